using Orleans.MoE.Kernels.Comm;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// This rank's part of a Megatron-style tensor-sliced layer: the first linear is split along its outputs (attention
/// heads, MLP hidden units), the second along its inputs, so each of the group's ranks computes a partial output
/// and one all-reduce sums them. Inference only: the all-reduce has no backward.
/// </summary>
public sealed class TensorSlice(ICommunicator group)
{
    /// <summary>Which slice this rank holds, 0 … <see cref="Count"/>−1.</summary>
    public int Index => group.Rank;

    public int Count => group.Size;

    /// <summary>This rank's share of a dimension of <paramref name="full"/> (checked to divide evenly).</summary>
    public int Part(int full, string what) => full % Count == 0
        ? full / Count
        : throw new ArgumentException($"{what} = {full} does not split over {Count} tensor-slicing ranks");

    /// <summary>
    /// The row-parallel linear: Σ over ranks of x_r·W_rᵀ, then the bias, which every rank holds whole and which must be
    /// added once, after the sum. The all-reduce gives every rank the same bits, so the ranks stay identical.
    /// </summary>
    public Tensor RowParallel(CastLinear linear, Tensor x)
    {
        if (torch.is_grad_enabled())
            throw new InvalidOperationException("tensor-sliced layers serve inference only (run under torch.no_grad()): their all-reduce has no backward");
        var sum = nn.functional.linear(x, linear.Weight.As(x)).contiguous();
        group.AllReduce(sum);
        return linear.Bias is null ? sum : sum + linear.Bias.As(sum);
    }
}
