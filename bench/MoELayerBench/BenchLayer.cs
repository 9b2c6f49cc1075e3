using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Routing;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>What a benchmarked layer call returns: the output, the aux loss and the routing decisions used.</summary>
public sealed record LayerResult(Tensor Output, Tensor AuxLoss, Tensor Experts, Tensor Weights);

/// <summary>A variant under test: the same router weights and experts, a different implementation.</summary>
public interface IBenchLayer
{
    string Name { get; }

    /// <summary>Capacity mode ("capacity 1.25") or "dropless".</summary>
    string Mode { get; }

    LayerResult Forward(Tensor x);
}

/// <summary>Parameters shared by every variant of one shape (bf16 on the device, like the peers' modules).</summary>
public sealed class SharedWeights(Tensor router, ExpertBank experts)
{
    public Tensor Router { get; } = router;
    public ExpertBank Experts { get; } = experts;
}
