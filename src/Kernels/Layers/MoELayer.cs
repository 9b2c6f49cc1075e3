using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Serving;
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

    /// <summary>
    /// Serving with tensor slicing: the ranks of this group hold the same tokens, so each routes only its share and
    /// the outputs are all-gathered (the parallelism-coordinated all-to-all); null routes every token here.
    /// </summary>
    public ICommunicator? CoordinationGroup { get; set; }

    /// <summary>
    /// Pads the dropless buffer to the expert-parallel group's largest expert load so that it crosses the exchange in
    /// equal chunks, the only layout the hierarchical exchange relays.
    /// </summary>
    public bool EqualChunks { get; set; }

    public override Tensor forward(Tensor x)
    {
        var shape = x.shape;
        var tokens = x.reshape(-1, shape[^1]);
        var output = CoordinationGroup is null ? RouteAndRun(tokens) : CoordinatedTokens.Run(tokens, CoordinationGroup, RouteAndRun);
        return output.view(shape);
    }

    /// <summary>[N, M] tokens → [N, M] outputs: route, dispatch, experts (here or on their owners), combine.</summary>
    Tensor RouteAndRun(Tensor tokens)
    {
        long n = tokens.shape[0];
        int k = router.Settings.TopK;
        // Sync-free (a captured CUDA graph), where it reads less than a padded buffer with room for every token in
        // every expert: each token through the experts it chose. Only for a layer that holds all its experts.
        if (Context.SyncFree && Exchange is null && Statistics is null && experts.PrefersChosen(n * k, tokens))
        {
            var (weights, chosen) = ScanRouter.Choose(tokens, router.Weight, router.Settings);
            return IndexDispatcher.Weighted(experts.ForwardChosen(IndexDispatcher.PerChoice(tokens, k), chosen.flatten()), weights, n, k);
        }
        int groups = GroupTokens > 0 && n % GroupTokens == 0 ? (int)(n / GroupTokens) : 1;
        // Experts that run as a grouped GEMM take their group ends from the device: dropless without a host read.
        var table = router.Route(tokens, groups, Context, Exchange is null ? experts.GroupAlignment(tokens) : 0);
        var buffer = IndexDispatcher.Dispatch(tokens, table);
        var output = (table.Layout, Exchange) switch
        {
            (ExpertBufferLayout.Packed, null) when table.SegmentEnds is { } ends => experts.ForwardGrouped(buffer, ends),
            (ExpertBufferLayout.Packed, null) => experts.ForwardPacked(buffer, table.SegmentSizes!),
            (ExpertBufferLayout.Packed, { } exchange) when EqualChunks =>
                PaddedExpertBuffer.Run(buffer, table.SegmentSizes!, exchange, padded => OnOwners(padded, exchange)),
            (ExpertBufferLayout.Packed, { } exchange) => OnOwners(buffer, table.SegmentSizes!, exchange),
            (_, null) => experts.forward(buffer),
            (_, { } exchange) => OnOwners(buffer, exchange),
        };
        var combined = IndexDispatcher.Combine(output, table, n);
        Statistics?.Add(new MoELayerReport(LayerIndex, table));
        return combined;
    }

    /// <summary>The padded buffer through the owners; with expert slicing each slice holder gets its expert's rows.</summary>
    Tensor OnOwners(Tensor buffer, ITokenExchange exchange)
    {
        int slices = experts.Shard.Slices;
        if (slices == 1) return ForwardOnOwners(buffer, exchange);
        return ExpertSlicing.SumPadded(ForwardOnOwners(ExpertSlicing.ReplicatePadded(buffer, slices), exchange), slices);
    }

    /// <summary>The packed buffer through the owners; with expert slicing each slice holder gets its expert's rows.</summary>
    Tensor OnOwners(Tensor buffer, long[] sizes, ITokenExchange exchange)
    {
        int slices = experts.Shard.Slices;
        if (slices == 1) return ForwardPackedOnOwners(buffer, sizes, exchange);
        var (replicated, sliceSizes) = ExpertSlicing.ReplicatePacked(buffer, sizes, slices);
        return ExpertSlicing.SumPacked(ForwardPackedOnOwners(replicated, sliceSizes, exchange), sizes, slices);
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
