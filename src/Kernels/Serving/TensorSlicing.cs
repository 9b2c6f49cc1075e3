using Orleans.MoE.Kernels.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// Which part of a whole model's non-expert parameter a tensor-slicing rank holds, by the parameter's place in the
/// model (Megatron's split): attention's qkv rows of its heads in each of q, k and v, and the proj columns that read
/// them; an MLP's fc rows of its hidden units, and the proj columns that read them; everything else whole.
/// </summary>
public static class TensorSlicing
{
    public static Tensor PartOf(string name, Tensor full, TensorSlice? slice)
    {
        if (slice is null) return full;
        if (name.EndsWith("attn.qkv.weight", StringComparison.Ordinal) || name.EndsWith("attn.qkv.bias", StringComparison.Ordinal))
        {
            long third = full.shape[0] / 3, part = third / slice.Count;
            return torch.cat([.. Enumerable.Range(0, 3).Select(i => full.narrow(0, i * third + slice.Index * part, part))], 0);
        }
        if (name.EndsWith("mlp.fc.weight", StringComparison.Ordinal) || name.EndsWith("mlp.fc.bias", StringComparison.Ordinal))
            return Chunk(full, 0, slice);
        if (name.EndsWith("attn.proj.weight", StringComparison.Ordinal) || name.EndsWith("mlp.proj.weight", StringComparison.Ordinal))
            return Chunk(full, 1, slice);
        return full;
    }

    static Tensor Chunk(Tensor full, int dim, TensorSlice slice)
    {
        long part = full.shape[dim] / slice.Count;
        return full.narrow(dim, slice.Index * part, part);
    }
}
