using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Moves tokens into the expert buffer and back through the routing table alone: dispatch is one scatter of
/// token rows into a zeroed buffer, combine is one gather of expert rows scaled by the gate (for k ≥ 2 weighted
/// and summed over the choices in fp32). Dropped assignments write to the spare row past the end, which is cut
/// off, and read a real row with weight 0, so neither side needs a mask.
/// </summary>
public static class IndexDispatcher
{
    /// <summary>[N, M] tokens → [E, groups·C, M] (padded) or [N·k, M] (packed) expert buffer.</summary>
    public static Tensor Dispatch(Tensor tokens, RoutingTable table)
    {
        long n = tokens.shape[0], m = tokens.shape[1], rows = table.BufferRows;
        var source = table.TopK == 1 ? tokens : tokens.unsqueeze(1).expand(n, table.TopK, m).reshape(n * table.TopK, m);
        var buffer = tokens.new_zeros(rows + 1, m).index_copy_(0, table.Destination, source).narrow(0, 0, rows);
        return table.Layout == ExpertBufferLayout.Padded ? buffer.view(table.ExpertCount, rows / table.ExpertCount, m) : buffer;
    }

    /// <summary>Expert outputs (either layout) → [N, M] tokens: Σ over choices of weight × output, in fp32.</summary>
    public static Tensor Combine(Tensor expertOutput, RoutingTable table, long tokens)
    {
        long m = expertOutput.shape[^1], rows = table.BufferRows;
        var gathered = expertOutput.reshape(rows, m).index_select(0, table.Destination.clamp_max(rows - 1));
        // One choice per token is a product, not a sum: scale in the output dtype and skip two fp32 passes.
        if (table.TopK == 1) return gathered * table.Weights.to_type(gathered.dtype).reshape(-1, 1);
        var accumulate = expertOutput.AccumulationType();
        var weighted = gathered.to_type(accumulate) * table.Weights.to_type(accumulate).reshape(-1, 1);
        return weighted.view(tokens, table.TopK, m).sum(1).to_type(expertOutput.dtype);
    }
}
