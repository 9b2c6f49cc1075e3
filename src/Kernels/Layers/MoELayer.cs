using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// One MoE feed-forward layer: router → dispatch by the mapping table → batched experts → combine. Tokens are
/// split into routing groups of <see cref="GroupTokens"/> (0 = the whole call). With an <see cref="Exchange"/> the
/// layer holds only its shard of the experts and the expert buffer travels to the experts' owners and back
/// through two all-to-alls.
/// </summary>
public sealed class MoELayer : nn.Module<Tensor, Tensor>
{
    readonly TopKRouter router;
    readonly ExpertBank experts;

    /// <param name="shard">The experts this rank holds (null: all of them).</param>
    public MoELayer(int layerIndex, int dModel, int expertFfn, GateSettings gate, double outputInitStd, int groupTokens, Generator? init = null, ExpertShard? shard = null) : base("moe")
    {
        LayerIndex = layerIndex;
        GroupTokens = groupTokens;
        router = new TopKRouter(dModel, gate, layerIndex, init);
        experts = new ExpertBank(shard ?? ExpertShard.All(gate.Experts), dModel, expertFfn, outputInitStd, init);
        RegisterComponents();
    }

    public int LayerIndex { get; }
    public int GroupTokens { get; }
    public TopKRouter Router => router;
    public ExpertBank Experts => experts;

    /// <summary>Set by the model (or a benchmark) before each forward: the random streams and where reports go.</summary>
    public RoutingContext Context { get; set; } = RoutingContext.Inference;
    public MoEStatistics? Statistics { get; set; }

    /// <summary>The all-to-all of this layer's expert-parallel group; null when this rank holds every expert.</summary>
    public ITokenExchange? Exchange { get; set; }

    public override Tensor forward(Tensor x)
    {
        var shape = x.shape;
        long m = shape[^1];
        var tokens = x.reshape(-1, m);
        long n = tokens.shape[0];
        int groups = GroupTokens > 0 && n % GroupTokens == 0 ? (int)(n / GroupTokens) : 1;
        var table = router.Route(tokens, groups, Context);
        var buffer = IndexDispatcher.Dispatch(tokens, table);
        var output = (table.Layout, Exchange) switch
        {
            (ExpertBufferLayout.Packed, null) => experts.ForwardPacked(buffer, table.SegmentSizes!),
            (ExpertBufferLayout.Packed, _) => throw new NotSupportedException("dropless routing (moe.drop_tokens = false) across expert-parallel ranks is not supported yet"),
            (_, null) => experts.forward(buffer),
            _ => ForwardOnOwners(buffer, Exchange),
        };
        var combined = IndexDispatcher.Combine(output, table, n);
        Statistics?.Add(new MoELayerReport(LayerIndex, table));
        return combined.view(shape);
    }

    /// <summary>
    /// [E, R, M] buffer (E = all experts) → the owners' outputs in the same layout. Chunk s of the buffer is the rows
    /// of rank s's experts; after the exchange this rank has its experts' rows from every rank, runs them as one
    /// batch per expert, and sends each rank its rows back.
    /// </summary>
    Tensor ForwardOnOwners(Tensor buffer, ITokenExchange exchange)
    {
        long all = buffer.shape[0], rows = buffer.shape[1], m = buffer.shape[2];
        int ranks = exchange.Size;
        long local = all / ranks;
        var received = TokenExchangeFunction.Apply(buffer.reshape(all * rows, m), exchange);
        var mine = received.view(ranks, local, rows, m).transpose(0, 1).reshape(local, ranks * rows, m);
        var output = experts.forward(mine);
        var back = output.view(local, ranks, rows, m).transpose(0, 1).reshape(all * rows, m);
        return TokenExchangeFunction.Apply(back, exchange).view(all, rows, m);
    }
}
