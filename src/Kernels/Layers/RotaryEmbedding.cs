using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Rotary position embedding (RoPE, base 10000) applied to queries and keys, rotating pairs of halves.</summary>
public static class RotaryEmbedding
{
    /// <summary>Rotates [B, H, T, D] for absolute positions [B or 1, T] (int64), so rows may stand at different positions.</summary>
    public static Tensor Apply(Tensor x, Tensor positions)
    {
        long d = x.shape[3], half = d / 2;
        using var scope = torch.NewDisposeScope();
        var inv = torch.pow(10000.0, -torch.arange(0, half, dtype: ScalarType.Float32, device: x.device) / half);
        var angles = (positions.to_type(ScalarType.Float32).unsqueeze(-1) * inv).unsqueeze(1); // [B, 1, T, half]
        var cos = angles.cos().to_type(x.dtype);
        var sin = angles.sin().to_type(x.dtype);
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).MoveToOuterDisposeScope();
    }
}
