namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Measured single-node all-to-all times that the intra-node link parameters are fitted to.</summary>
public sealed record Calibration(string Source, IReadOnlyList<CalibrationPoint> Points)
{
    const double MiB = 1 << 20;

    /// <summary>
    /// One H200 node, NVLink, NCCL 2.28 through torch.distributed <c>all_to_all_single</c>, bf16 (TARGETS.md).
    /// "MB" there is MiB: 1 MiB in 35 µs on 2 GPUs is the 15 GB/s busbw quoted beside it.
    /// </summary>
    public static Calibration H200NvLink { get; } = new(
        "H200 NVLink, NCCL 2.28, torch all_to_all_single, bf16",
        [
            new(2, 1 * MiB, 35e-6), new(2, 8 * MiB, 39e-6), new(2, 64 * MiB, 140e-6), new(2, 256 * MiB, 477e-6),
            new(4, 1 * MiB, 42e-6), new(4, 8 * MiB, 47e-6), new(4, 64 * MiB, 194e-6), new(4, 256 * MiB, 677e-6),
        ]);
}
