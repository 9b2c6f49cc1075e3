using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Where attention keeps the keys and values of past positions during incremental decoding. Rows of a batch may be
/// at different positions (continuous batching), so positions and visibility come from the cache, per row.
/// </summary>
public interface IKvCache
{
    /// <summary>One past the largest position the next <paramref name="newTokens"/> tokens of any row will take.</summary>
    long End(long newTokens);

    /// <summary>Absolute positions [B or 1, T] (int64) of the T new tokens of every row.</summary>
    Tensor Positions(long newTokens, Device device);

    /// <summary>Stores one layer's new keys/values [B, H, T, D] and returns what the new tokens attend over.</summary>
    AttentionHistory Append(int layer, Tensor keys, Tensor values);

    /// <summary>Called by the model after every layer has appended its new positions.</summary>
    void Advance(long newTokens);
}

/// <summary>
/// Keys and values [B, H, S, D] the new tokens attend over, and which of them each may see: a boolean mask
/// broadcastable to [B, H, T, S], or none with <see cref="Causal"/> saying whether the plain causal mask applies.
/// </summary>
public readonly record struct AttentionHistory(Tensor Keys, Tensor Values, Tensor? Mask, bool Causal);
