using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>How the expert buffer is laid out.</summary>
public enum ExpertBufferLayout
{
    /// <summary>[E, groups·C] rows: every expert gets C slots per group, empty slots stay zero (batched GEMM).</summary>
    Padded,

    /// <summary>N·k rows, expert after expert (dropless only; a grouped GEMM, or one GEMM per expert segment).</summary>
    Packed,
}

/// <summary>
/// The token→(expert, slot) mapping of one MoE forward, the only routing structure there is (no
/// [tokens × experts × capacity] one-hot tensor). In the padded layout row e·(groups·C) + g·C + slot holds the
/// token that group g sent to expert e at that slot; in the packed layout expert e's tokens are rows
/// offset(e) … offset(e)+count(e)−1. A dropped assignment points at <see cref="DropRow"/>, one past the end,
/// which dispatch never fills and combine reads as zero. The statistics are computed when first read, so a
/// forward that nobody inspects (inference) does not pay for them.
/// </summary>
public sealed class RoutingTable
{
    Tensor? weights, auxLoss, zLoss, load, kept, rowSource;

    /// <summary>[N, k] chosen experts per token (int64).</summary>
    public required Tensor Experts { get; init; }

    /// <summary>[N·k] buffer row of each (token, choice), or <see cref="DropRow"/> when dropped (int64).</summary>
    public required Tensor Destination { get; init; }

    /// <summary>[N, k] combine weights (fp32): gate probabilities, renormalised over kept choices when k ≥ 2; 0 when dropped.
    /// Given, or made from <see cref="WeightsSource"/> when first read.</summary>
    public Tensor Weights
    {
        get => weights ??= WeightsSource?.Invoke() ?? throw new InvalidOperationException("a routing table needs Weights or a WeightsSource");
        init => weights = value;
    }

    public Func<Tensor>? WeightsSource { get; init; }

    /// <summary>
    /// [N, k] what the fused combine may take instead of <see cref="Weights"/>: it skips dropped choices and gives their
    /// weights a zero gradient itself, so with one choice the gates need no mask (one kernel each way fewer). Null: the
    /// weights.
    /// </summary>
    public Tensor? CombineGates { get; init; }

    public required int ExpertCount { get; init; }
    public required int TopK { get; init; }
    public required int Groups { get; init; }

    /// <summary>Slots per expert and group (padded layout); the largest expert load in the packed layout (0 when the
    /// sizes stay on the device).</summary>
    public required int Capacity { get; init; }

    public ExpertBufferLayout Layout { get; init; } = ExpertBufferLayout.Padded;

    /// <summary>Rows per expert in the packed layout when read back to the host (the one sync of dropless mode).</summary>
    public long[]? SegmentSizes { get; init; }

    /// <summary>
    /// [E] int32 on the device: where each expert's rows end in the packed layout when the sizes are not read back
    /// (grouped GEMM). Then <see cref="Capacity"/> is 0 and rows between experts may be padding.
    /// </summary>
    public Tensor? SegmentEnds { get; init; }

    /// <summary>Rows of the packed buffer when they include padding between experts (null: one per assignment).</summary>
    public long? PackedRows { get; init; }

    /// <summary>
    /// Where the fused dispatch hands the tokens' gradient to the fused gate's backward, and the gate output the dispatch
    /// takes as an input so that the gate's backward waits for its own (null: the dispatch returns the gradient).
    /// </summary>
    public (DispatchGradientLink Link, Tensor Anchor)? GradientLink { get; init; }

    public required Func<Tensor> AuxLossSource { get; init; }
    public required Func<Tensor> ZLossSource { get; init; }
    public required Func<Tensor> LoadSource { get; init; }
    public required Func<Tensor> KeptSource { get; init; }

    /// <summary>Load-balancing loss, averaged over routing groups (fp32 scalar).</summary>
    public Tensor AuxLoss => auxLoss ??= AuxLossSource();

    /// <summary>Router z-loss: mean squared log-sum-exp of the logits (fp32 scalar).</summary>
    public Tensor ZLoss => zLoss ??= ZLossSource();

    /// <summary>[E] assignments each expert received, before dropping (int64).</summary>
    public Tensor Load => load ??= LoadSource();

    /// <summary>[E] assignments each expert kept (int64).</summary>
    public Tensor Kept => kept ??= KeptSource();

    /// <summary>
    /// [BufferRows] int64: the (token · k + choice) each buffer row holds, 0 for an empty row — the inverse of
    /// <see cref="Destination"/>, which turns scatters into gathers.
    /// </summary>
    public Tensor RowSource
    {
        get => rowSource ??= Destination.new_zeros(BufferRows + 1)
            .index_copy_(0, Destination, torch.arange(Destination.shape[0], device: Destination.device)).narrow(0, 0, BufferRows);
        init => rowSource = value;
    }

    /// <summary>Rows in the expert buffer.</summary>
    public long BufferRows => Layout == ExpertBufferLayout.Padded ? (long)ExpertCount * Groups * Capacity : PackedRows ?? Destination.shape[0];

    public long DropRow => BufferRows;
}
