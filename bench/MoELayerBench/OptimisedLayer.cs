using Orleans.MoE.Kernels.Layers;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>The project's MoE layer (src/Kernels): scan routing, table dispatch, batched or grouped experts.</summary>
public sealed class OptimisedLayer(MoELayer layer, string mode) : IBenchLayer
{
    public string Name => "moe-layer";
    public string Mode => mode;

    public LayerResult Forward(Tensor x)
    {
        var statistics = new MoEStatistics();
        layer.Statistics = statistics;
        var y = layer.forward(x);
        var table = statistics.Reports[0].Table;
        return new LayerResult(y, table.AuxLoss, table.Experts, table.Weights);
    }
}
