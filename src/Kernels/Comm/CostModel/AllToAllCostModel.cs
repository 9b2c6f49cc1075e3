namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>
/// Alpha–beta estimates of one all-to-all of S bytes per rank over p GPUs in nodes of G, done two ways
/// (DeepSpeed-MoE §5.3). Flat: one NCCL grouped send/recv to all p−1 peers, G−1 over NVLink and p−G over the
/// network. Hierarchical: a layout transform, an all-to-all among the G GPUs of each node, a second transform,
/// then an all-to-all among the p/G GPUs with the same local index, one per node: G + p/G − 2 peers instead of
/// p − 1, at the price of moving every byte twice and two memory-bound copies.
/// </summary>
public sealed class AllToAllCostModel(AllToAllCostParameters parameters)
{
    public AllToAllCostParameters Parameters { get; } = parameters;

    public AllToAllEstimate Flat(ClusterShape shape, double bytesPerRank)
    {
        int p = shape.Gpus, g = shape.GpusPerNode;
        // The chunk for each peer is S/p: G−1 of them stay in the node, p−G cross the network.
        var call = OneCall(g - 1, p - g, bytesPerRank * (g - 1) / p, bytesPerRank * (p - g) / p);
        return new AllToAllEstimate(call.Total, call.Latency, call.Transfer, 0);
    }

    public AllToAllEstimate Hierarchical(ClusterShape shape, double bytesPerRank)
    {
        int g = shape.GpusPerNode, nodes = shape.Nodes;
        // Both stages move all S bytes: the first gathers, per destination local index, what the whole node
        // sends there; the second delivers it, one chunk of S/nodes per node.
        var intra = OneCall(g - 1, 0, IntraNodeLink.BytesLeavingEachGpu(g, bytesPerRank), 0);
        var inter = OneCall(0, nodes - 1, 0, bytesPerRank * (nodes - 1) / nodes);
        // A permute-copy reads and writes every byte once.
        double transforms = 2 * (Parameters.TransformLaunchSeconds + 2 * bytesPerRank / Parameters.MemoryBandwidthBytesPerSecond);
        return new AllToAllEstimate(intra.Total + inter.Total + transforms, intra.Latency + inter.Latency,
            intra.Transfer + inter.Transfer, transforms);
    }

    readonly record struct CallCost(double Total, double Latency, double Transfer);

    /// <summary>
    /// One grouped send/recv call. NVLink and NIC traffic proceed at once, so the slower link bounds the transfer.
    /// NCCL schedules a group's peers in rounds of one send peer and one receive peer each (p2pSchedule in its
    /// init.cc/enqueue.cc), so per-peer costs are counted once per peer.
    /// </summary>
    CallCost OneCall(int intraPeers, int interPeers, double intraBytes, double interBytes)
    {
        if (intraPeers + interPeers == 0) return default; // one rank in the group: nothing to exchange, no call
        var intra = Parameters.Intra;
        var inter = Parameters.Inter;
        double fixedLatency = intra.CallOverheadSeconds + intraPeers * intra.PerPeerSeconds;
        double network = interPeers * (Parameters.MessageOverheadSeconds + inter.MessageLatencySeconds);
        double transfer = Math.Max(intraBytes / intra.BusBandwidthBytesPerSecond, interBytes / inter.BandwidthBytesPerSecond);
        double total = fixedLatency + (Parameters.OverlapNetworkLatency ? Math.Max(network, transfer) : network + transfer);
        return new CallCost(total, fixedLatency + network, transfer);
    }
}
