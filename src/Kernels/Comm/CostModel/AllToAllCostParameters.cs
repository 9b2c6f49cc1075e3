namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Everything the flat and hierarchical all-to-all estimates depend on besides the cluster shape and size.</summary>
/// <param name="Intra">The NVLink all-to-all, fitted to measurements.</param>
/// <param name="Inter">The network, stated assumptions.</param>
/// <param name="MessageOverheadSeconds">
/// NCCL's software cost of one more peer in a grouped send/recv, paid by network messages on top of their
/// latency; the calibrated per-peer cost is the default (on NVLink the wire latency is well under a microsecond).
/// </param>
/// <param name="MemoryBandwidthBytesPerSecond">HBM traffic (read + write) a layout transform achieves.</param>
/// <param name="TransformLaunchSeconds">Fixed cost of one layout-transform kernel.</param>
/// <param name="OverlapNetworkLatency">
/// False (default): per-message network costs add to the transfer time, as in a pairwise exchange whose rounds
/// run one after another (an upper bound). True: they hide behind other peers' transfers and only the larger of
/// the two counts (a lower bound).
/// </param>
public sealed record AllToAllCostParameters(
    IntraNodeLink Intra,
    InterNodeLink Inter,
    double MessageOverheadSeconds,
    double MemoryBandwidthBytesPerSecond,
    double TransformLaunchSeconds,
    bool OverlapNetworkLatency);
