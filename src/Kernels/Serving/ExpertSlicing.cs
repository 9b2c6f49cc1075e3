using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// Expert slicing (DeepSpeed-MoE §5.2), for serving on more expert-parallel ranks than a layer has experts: each
/// expert's hidden units are split into S slices on S consecutive ranks. GELU acts on each hidden unit alone, so the
/// expert's output is the sum of its slices' outputs: every slice holder gets all of its expert's rows, and the S
/// partial outputs are added when they come back.
/// </summary>
public static class ExpertSlicing
{
    /// <summary>Padded [E, R, M] → [E·S, R, M]: expert e's rows once for each of its slices.</summary>
    public static Tensor ReplicatePadded(Tensor buffer, int slices) => buffer.repeat_interleave(slices, 0);

    /// <summary>[E·S, R, M] partial outputs → [E, R, M], summed over the slices in fp32.</summary>
    public static Tensor SumPadded(Tensor output, int slices)
    {
        long experts = output.shape[0] / slices;
        var partials = output.view(experts, slices, output.shape[1], output.shape[2]);
        return partials.to_type(output.AccumulationType()).sum(1).to_type(output.dtype);
    }

    /// <summary>Packed segments (expert after expert, <paramref name="sizes"/> rows each) → each segment S times.</summary>
    public static (Tensor Buffer, long[] Sizes) ReplicatePacked(Tensor buffer, long[] sizes, int slices)
    {
        var segments = buffer.split(sizes, 0);
        var replicated = segments.SelectMany(segment => Enumerable.Repeat(segment, slices)).ToArray();
        return (torch.cat(replicated, 0), sizes.SelectMany(size => Enumerable.Repeat(size, slices)).ToArray());
    }

    /// <summary>Replicated packed outputs → one segment per expert, summed over its slices in fp32.</summary>
    public static Tensor SumPacked(Tensor output, long[] sizes, int slices)
    {
        long m = output.shape[1];
        var accumulate = output.AccumulationType();
        var perExpert = output.split(sizes.Select(size => size * slices).ToArray(), 0);
        var summed = perExpert.Select((partials, e) => partials.view(slices, sizes[e], m).to_type(accumulate).sum(dim: 0)).ToArray();
        return torch.cat(summed, 0).to_type(output.dtype);
    }
}
