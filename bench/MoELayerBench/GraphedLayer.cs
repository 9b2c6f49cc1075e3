using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Native;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// The project's MoE layer as CUDA graphs (<see cref="GraphedMoELayer"/>): one launch forward, one backward. With
/// <paramref name="fusedRouting"/> false the graphs are captured with TorchSharp's routing operations instead of the
/// fused routing kernels, with <paramref name="tunedGemm"/> false with torch.bmm for the capacity layout's expert
/// GEMMs instead of the tuned cuBLASLt ones (<see cref="BatchedExpertGemm"/>), with <paramref name="hopperGemm"/>
/// true with our Hopper grouped GEMM for the dropless experts (<see cref="HopperExpertGemm.Enabled"/>, opt-in) instead
/// of libtorch's grouped GEMM and GELU, and with <paramref name="swappedGemm"/> false without our swapped-tile GELU
/// products for capacity buffers (<see cref="HopperExpertGemm.CapacityEnabled"/>, on by default), for comparisons in
/// the same run.
/// </summary>
public sealed class GraphedLayer(MoELayer layer, string mode, long[] shape, ScalarType dtype, Device device, bool fusedRouting = true, bool tunedGemm = true,
    bool hopperGemm = false, bool swappedGemm = true) : IBenchLayer, IDisposable
{
    readonly GraphedMoELayer graphed = new(layer, shape, dtype, device);

    public string Name => graphed.Graphs ? "moe-layer graphs" : "moe-layer static (no graphs)";
    public string Mode => mode;

    /// <summary>Kernels of one forward and one backward (known once captured).</summary>
    public ((long Kernels, long Others) Forward, (long Kernels, long Others) Backward)? Operations => graphed.Operations;

    public LayerResult Forward(Tensor x)
    {
        // The switches matter while the graphs are captured (the first call); replays run what was captured.
        bool routing = RoutingKernels.Enabled, gemm = BatchedExpertGemm.Enabled, hopper = HopperExpertGemm.Enabled;
        bool swapped = HopperExpertGemm.CapacityEnabled;
        RoutingKernels.Enabled = routing && fusedRouting;
        BatchedExpertGemm.Enabled = gemm && tunedGemm;
        HopperExpertGemm.Enabled = hopper || hopperGemm;
        HopperExpertGemm.CapacityEnabled = swapped && swappedGemm;
        try
        {
            var (output, aux) = graphed.Forward(x);
            return new LayerResult(output, aux, graphed.Chosen, graphed.Weights);
        }
        finally
        {
            RoutingKernels.Enabled = routing;
            BatchedExpertGemm.Enabled = gemm;
            HopperExpertGemm.Enabled = hopper;
            HopperExpertGemm.CapacityEnabled = swapped;
        }
    }

    public void Dispose() => graphed.Dispose();
}
