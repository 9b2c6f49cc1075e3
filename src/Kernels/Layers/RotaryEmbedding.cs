using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Rotary position embedding (RoPE, base 10000) applied to queries and keys, rotating pairs of halves.</summary>
public static class RotaryEmbedding
{
    /// <summary>Rotates [B, H, T, D] for absolute positions offset, offset+1, ….</summary>
    public static Tensor Apply(Tensor x, long offset)
    {
        long t = x.shape[2], d = x.shape[3], half = d / 2;
        using var scope = torch.NewDisposeScope();
        var inv = torch.pow(10000.0, -torch.arange(0, half, dtype: ScalarType.Float32, device: x.device) / half);
        var angles = torch.outer(torch.arange(offset, offset + t, dtype: ScalarType.Float32, device: x.device), inv);
        var cos = angles.cos().to_type(x.dtype);
        var sin = angles.sin().to_type(x.dtype);
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).MoveToOuterDisposeScope();
    }
}
