using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// One MoE feed-forward layer in a single process: router → dispatch by the mapping table → batched experts →
/// combine. Tokens are split into routing groups of <see cref="GroupTokens"/> (0 = the whole call).
/// </summary>
public sealed class MoELayer : nn.Module<Tensor, Tensor>
{
    readonly TopKRouter router;
    readonly ExpertBank experts;

    public MoELayer(int layerIndex, int dModel, int expertFfn, GateSettings gate, double outputInitStd, int groupTokens, Generator? init = null) : base("moe")
    {
        LayerIndex = layerIndex;
        GroupTokens = groupTokens;
        router = new TopKRouter(dModel, gate, layerIndex, init);
        experts = new ExpertBank(gate.Experts, dModel, expertFfn, outputInitStd, init: init);
        RegisterComponents();
    }

    public int LayerIndex { get; }
    public int GroupTokens { get; }
    public TopKRouter Router => router;
    public ExpertBank Experts => experts;

    /// <summary>Set by the model (or a benchmark) before each forward: the random streams and where reports go.</summary>
    public RoutingContext Context { get; set; } = RoutingContext.Inference;
    public MoEStatistics? Statistics { get; set; }

    public override Tensor forward(Tensor x)
    {
        var shape = x.shape;
        long m = shape[^1];
        var tokens = x.reshape(-1, m);
        long n = tokens.shape[0];
        int groups = GroupTokens > 0 && n % GroupTokens == 0 ? (int)(n / GroupTokens) : 1;
        var table = router.Route(tokens, groups, Context);
        var buffer = IndexDispatcher.Dispatch(tokens, table);
        var output = table.Layout == ExpertBufferLayout.Packed ? experts.ForwardPacked(buffer, table.SegmentSizes!) : experts.forward(buffer);
        var combined = IndexDispatcher.Combine(output, table, n);
        Statistics?.Add(new MoELayerReport(LayerIndex, table));
        return combined.view(shape);
    }
}
