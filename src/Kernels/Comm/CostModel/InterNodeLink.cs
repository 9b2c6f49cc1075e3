namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>
/// The network between nodes as one GPU sees it: a latency paid per message and the bandwidth of this GPU's
/// share of the node's NICs (rail-optimised HGX: one 400 Gb/s NIC per GPU = 50 GB/s).
/// </summary>
public sealed record InterNodeLink(double MessageLatencySeconds, double BandwidthBytesPerSecond);
