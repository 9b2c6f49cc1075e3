using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Moves tokens into the expert buffer and back through the routing table alone: dispatch is one scatter of
/// token rows into a zeroed buffer (one gather when every buffer row holds a token: dropless and unpadded), combine is
/// one gather of expert rows scaled by the gate (for k ≥ 2 weighted and summed over the choices in fp32). Dropped
/// assignments write to the spare row past the end, which is cut off, and read a real row with weight 0, so neither
/// side needs a mask. Both backwards are gathers (<see cref="RowGather"/>): the combine's gives an empty buffer row
/// another row's gradient, which reaches no weight because an empty row's input is zero and experts have no biases
/// (GELU(0·W₁) = 0, so it adds nothing to either weight's gradient), and its input gradient is never read. On a GPU
/// both directions are one kernel each way instead (<see cref="FusedDispatch"/>, <see cref="FusedCombine"/>).
/// </summary>
public static class IndexDispatcher
{
    /// <summary>[N, M] tokens → [E, groups·C, M] (padded) or [N·k, M] (packed) expert buffer.</summary>
    public static Tensor Dispatch(Tensor tokens, RoutingTable table)
    {
        long m = tokens.shape[1], rows = table.BufferRows;
        if (RoutingKernels.SupportsRows(tokens))
            return Shaped(FusedDispatch.Apply(tokens, table.RowSource, table.Destination, table.TopK, rows, table.GradientLink), table);
        if (table.Layout == ExpertBufferLayout.Packed && rows == table.Destination.shape[0])
            return RowGather.Apply(PerChoice(tokens, table.TopK), table.RowSource, () => table.Destination);
        return Shaped(tokens.new_zeros(rows + 1, m).index_copy_(0, table.Destination, PerChoice(tokens, table.TopK)).narrow(0, 0, rows), table);
    }

    /// <summary>Buffer rows [rows, M] in the table's layout: [E, rows / E, M] when padded, as they are when packed.</summary>
    static Tensor Shaped(Tensor rows, RoutingTable table) =>
        table.Layout == ExpertBufferLayout.Padded ? rows.view(table.ExpertCount, rows.shape[0] / table.ExpertCount, rows.shape[1]) : rows;

    /// <summary>Expert outputs (either layout) → [N, M] tokens: Σ over choices of weight × output, in fp32.</summary>
    public static Tensor Combine(Tensor expertOutput, RoutingTable table, long tokens)
    {
        long m = expertOutput.shape[^1], rows = table.BufferRows;
        if (RoutingKernels.SupportsRows(expertOutput))
            return FusedCombine.Apply(expertOutput.reshape(rows, m), table.CombineGates ?? table.Weights, table.RowSource, table.Destination, tokens, table.TopK);
        var gathered = RowGather.Apply(expertOutput.reshape(rows, m), table.Destination.clamp_max(rows - 1), () => table.RowSource);
        return Weighted(gathered, table.Weights, tokens, table.TopK);
    }

    /// <summary>[N, M] tokens → [N·k, M]: one row per (token, choice), the tokens themselves when k = 1.</summary>
    public static Tensor PerChoice(Tensor tokens, int k)
    {
        long n = tokens.shape[0], m = tokens.shape[1];
        return k == 1 ? tokens : tokens.unsqueeze(1).expand(n, k, m).reshape(n * k, m);
    }

    /// <summary>[N·k, M] outputs of every (token, choice) and [N, k] weights → [N, M]: Σ over choices of weight × output.</summary>
    public static Tensor Weighted(Tensor outputs, Tensor weights, long tokens, int k)
    {
        // One choice per token is a product, not a sum: scale in the output dtype and skip two fp32 passes.
        if (k == 1) return outputs * weights.to_type(outputs.dtype).reshape(-1, 1);
        var accumulate = outputs.AccumulationType();
        var weighted = outputs.to_type(accumulate) * weights.to_type(accumulate).reshape(-1, 1);
        return weighted.view(tokens, k, outputs.shape[^1]).sum(1).to_type(outputs.dtype);
    }
}
