using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Keys and values of past positions, one entry per layer, for incremental decoding.</summary>
public sealed class KvCache : IDisposable
{
    readonly (Tensor Keys, Tensor Values)?[] layers;

    public KvCache(int layerCount) => layers = new (Tensor, Tensor)?[layerCount];

    /// <summary>Positions already cached (the offset of the next token).</summary>
    public long Length { get; private set; }

    /// <summary>Appends [B, H, T, D] keys/values for a layer and returns the full [B, H, S, D] history.</summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        var previous = layers[layer];
        var k = previous is null ? keys : torch.cat([previous.Value.Keys, keys], 2);
        var v = previous is null ? values : torch.cat([previous.Value.Values, values], 2);
        previous?.Keys.Dispose();
        previous?.Values.Dispose();
        layers[layer] = (k.DetachFromDisposeScope(), v.DetachFromDisposeScope());
        return (k, v);
    }

    /// <summary>Called by the model after every layer has appended its new positions.</summary>
    internal void Advance(long tokens) => Length += tokens;

    public void Dispose()
    {
        foreach (var entry in layers)
        {
            entry?.Keys.Dispose();
            entry?.Values.Dispose();
        }
        Array.Clear(layers);
        Length = 0;
    }
}
