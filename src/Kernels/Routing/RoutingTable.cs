using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// The token→(expert, slot) mapping of one MoE forward, the only routing structure there is (no
/// [tokens × experts × capacity] one-hot tensor). Expert buffers are laid out [E, groups·C]: row
/// e·(groups·C) + g·C + slot holds the token that group g sent to expert e at that slot. A dropped
/// assignment points at row E·groups·C, one past the end, which dispatch never fills and combine reads as zero.
/// </summary>
public sealed class RoutingTable : IDisposable
{
    /// <summary>[N, k] chosen experts per token (int64).</summary>
    public required Tensor Experts { get; init; }

    /// <summary>[N·k] buffer row of each (token, choice), or <see cref="DropRow"/> when dropped (int64).</summary>
    public required Tensor Destination { get; init; }

    /// <summary>[N, k] combine weights (fp32): gate probabilities, renormalised over kept choices when k ≥ 2; 0 when dropped.</summary>
    public required Tensor Weights { get; init; }

    /// <summary>[E] assignments each expert received, before dropping (int64).</summary>
    public required Tensor Load { get; init; }

    /// <summary>[E] assignments each expert kept (int64).</summary>
    public required Tensor Kept { get; init; }

    /// <summary>Load-balancing loss, averaged over routing groups (fp32 scalar).</summary>
    public required Tensor AuxLoss { get; init; }

    /// <summary>Router z-loss: mean squared log-sum-exp of the logits (fp32 scalar).</summary>
    public required Tensor ZLoss { get; init; }

    public required int ExpertCount { get; init; }
    public required int TopK { get; init; }
    public required int Groups { get; init; }
    public required int Capacity { get; init; }

    /// <summary>Rows in the expert buffer (E · groups · C).</summary>
    public long BufferRows => (long)ExpertCount * Groups * Capacity;

    public long DropRow => BufferRows;

    public void Dispose()
    {
        Experts.Dispose();
        Destination.Dispose();
        Weights.Dispose();
        Load.Dispose();
        Kept.Dispose();
        AuxLoss.Dispose();
        ZLoss.Dispose();
    }
}
