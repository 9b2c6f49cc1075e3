using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Keys and values of past positions for a batch whose rows all stand at the same position (one prompt).</summary>
public sealed class KvCache(int layerCount) : IKvCache, IDisposable
{
    readonly (Tensor Keys, Tensor Values)?[] layers = new (Tensor, Tensor)?[layerCount];

    /// <summary>Positions already cached (the offset of the next token).</summary>
    public long Length { get; private set; }

    public long End(long newTokens) => Length + newTokens;

    public Tensor Positions(long newTokens, Device device) => torch.arange(Length, Length + newTokens, device: device).unsqueeze(0);

    public AttentionHistory Append(int layer, Tensor keys, Tensor values)
    {
        var previous = layers[layer];
        var k = previous is null ? keys : torch.cat([previous.Value.Keys, keys], 2);
        var v = previous is null ? values : torch.cat([previous.Value.Values, values], 2);
        previous?.Keys.Dispose();
        previous?.Values.Dispose();
        layers[layer] = (k.DetachFromDisposeScope(), v.DetachFromDisposeScope());
        long t = keys.shape[2];
        // No history, or a single new token that may see everything cached: the plain causal mask or none. Several
        // new tokens after a history: token i sees every cached position and the new ones up to i.
        if (Length == 0 || t == 1) return new AttentionHistory(k, v, null, t > 1);
        var allowed = torch.ones(t, Length + t, dtype: ScalarType.Bool, device: keys.device).tril(Length);
        return new AttentionHistory(k, v, allowed, false);
    }

    public void Advance(long newTokens) => Length += newTokens;

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
