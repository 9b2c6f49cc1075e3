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
            (ExpertBufferLayout.Packed, _) => ForwardPackedOnOwners(buffer, table.SegmentSizes!, Exchange),
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

    /// <summary>
    /// Dropless: the packed buffer (expert after expert, <paramref name="sizes"/> rows each) goes to the owners in
    /// chunks of different sizes. The owners first learn how many rows of each of their experts every rank sends
    /// (a small exchange of counts), regroup what arrives from (rank, expert) order into expert order for the
    /// per-expert GEMMs, and undo both on the way back.
    /// </summary>
    Tensor ForwardPackedOnOwners(Tensor buffer, long[] sizes, ITokenExchange exchange)
    {
        int ranks = exchange.Size, local = sizes.Length / ranks;
        long[] received;
        using (var counts = torch.tensor(sizes).view(sizes.Length, 1).to(buffer.device))
        using (var arrived = exchange.Exchange(counts))
            received = arrived.cpu().data<long>().ToArray(); // [source rank, local expert]
        long[] PerRank(long[] perExpert) => perExpert.Chunk(local).Select(c => c.Sum()).ToArray();
        var send = PerRank(sizes);
        var receive = PerRank(received);
        var mine = TokenExchangeFunction.Apply(buffer, exchange, send, receive);
        var (byExpert, expertSizes) = ExpertOrder(received, ranks, local);
        using var order = torch.tensor(byExpert, device: buffer.device);
        using var inverse = torch.empty_like(order).index_copy_(0, order, torch.arange(order.shape[0], device: buffer.device));
        var output = experts.ForwardPacked(mine.index_select(0, order), expertSizes).index_select(0, inverse);
        return TokenExchangeFunction.Apply(output, exchange, receive, send);
    }

    /// <summary>Row indices that turn (source rank, local expert) chunks into (local expert, source rank) order.</summary>
    static (long[] Order, long[] ExpertSizes) ExpertOrder(long[] counts, int ranks, int local)
    {
        var offsets = RowSplits.Offsets(counts);
        var order = new List<long>((int)counts.Sum());
        var expertSizes = new long[local];
        for (int e = 0; e < local; e++)
            for (int r = 0; r < ranks; r++)
            {
                int chunk = r * local + e;
                for (long i = 0; i < counts[chunk]; i++) order.Add(offsets[chunk] + i);
                expertSizes[e] += counts[chunk];
            }
        return (order.ToArray(), expertSizes);
    }
}
