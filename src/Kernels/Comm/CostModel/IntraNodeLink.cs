namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>
/// An all-to-all among the GPUs of one node: a fixed cost per call (launch and synchronisation), a cost per peer
/// (NCCL handles each peer's send/recv pair as its own task), and the bytes that leave each GPU at the bus bandwidth.
/// </summary>
public sealed record IntraNodeLink(double CallOverheadSeconds, double PerPeerSeconds, double BusBandwidthBytesPerSecond)
{
    /// <summary>Time of an all-to-all of <paramref name="bytesPerRank"/> among <paramref name="gpus"/> GPUs of one node.</summary>
    public double AllToAllSeconds(int gpus, double bytesPerRank) =>
        CallOverheadSeconds + (gpus - 1) * PerPeerSeconds + BytesLeavingEachGpu(gpus, bytesPerRank) / BusBandwidthBytesPerSecond;

    /// <summary>A rank keeps 1/n of its data; the rest crosses the link (the (n−1)/n of NCCL's busbw).</summary>
    public static double BytesLeavingEachGpu(int gpus, double bytesPerRank) => bytesPerRank * (gpus - 1) / gpus;
}
