using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Moves tokens into expert buffers and back through the routing table alone: dispatch is one gather of
/// token rows, combine is one gather of expert rows weighted and summed in fp32. The padding row (index N on
/// the token side, <see cref="RoutingTable.DropRow"/> on the expert side) is zero, so dropped tokens and
/// empty slots need no masks.
/// </summary>
public static class IndexDispatcher
{
    /// <summary>[N, M] tokens → [E, groups·C, M] expert buffer.</summary>
    public static Tensor Dispatch(Tensor tokens, RoutingTable table)
    {
        long n = tokens.shape[0], m = tokens.shape[1];
        using var scope = torch.NewDisposeScope();
        var tokenOfAssignment = torch.arange(n * table.TopK, device: tokens.device).div(table.TopK, rounding_mode: RoundingMode.floor);
        // Source token of every buffer row; unfilled rows (and the drop row) read the zero padding row N.
        var source = torch.full(table.BufferRows + 1, n, dtype: ScalarType.Int64, device: tokens.device)
            .index_copy_(0, table.Destination, tokenOfAssignment)
            .narrow(0, 0, table.BufferRows);
        var padded = torch.cat([tokens, tokens.new_zeros(1, m)], 0);
        return padded.index_select(0, source).view(table.ExpertCount, table.BufferRows / table.ExpertCount, m)
            .MoveToOuterDisposeScope();
    }

    /// <summary>[E, groups·C, M] expert outputs → [N, M] tokens, Σ over choices of weight × output, in fp32.</summary>
    public static Tensor Combine(Tensor expertOutput, RoutingTable table, long tokens)
    {
        long m = expertOutput.shape[2];
        using var scope = torch.NewDisposeScope();
        var rows = expertOutput.reshape(table.BufferRows, m);
        var padded = torch.cat([rows, rows.new_zeros(1, m)], 0);
        var gathered = padded.index_select(0, table.Destination).to_type(expertOutput.AccumulationType());
        var weighted = gathered * table.Weights.reshape(-1, 1).to_type(gathered.dtype);
        return weighted.view(tokens, table.TopK, m).sum(1).to_type(expertOutput.dtype).MoveToOuterDisposeScope();
    }
}
