using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Multi-head causal self-attention with an optional KV cache and optional rotary positions.</summary>
public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
{
    readonly CastLinear qkv;
    readonly CastLinear proj;
    readonly int heads;
    readonly bool rotary;
    readonly double dropout;

    public CausalSelfAttention(int dModel, int heads, bool rotary, double dropout, double outputInitStd, Generator? init = null) : base("attn")
    {
        this.heads = heads;
        this.rotary = rotary;
        this.dropout = dropout;
        qkv = new CastLinear(dModel, 3 * dModel, init: init);
        proj = new CastLinear(dModel, dModel, initStd: outputInitStd, init: init);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null, 0);

    /// <summary>x [B, T, M]; with a cache, T new positions are appended after the cached ones.</summary>
    public Tensor Forward(Tensor x, KvCache? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1], m = x.shape[2], d = m / heads;
        long offset = cache?.Length ?? 0;
        var parts = qkv.forward(x).view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4);
        Tensor q = parts[0], k = parts[1], v = parts[2];
        if (rotary)
        {
            q = RotaryEmbedding.Apply(q, offset);
            k = RotaryEmbedding.Apply(k, offset);
        }
        if (cache is not null) (k, v) = cache.Append(layer, k, v);

        Tensor attended;
        double p = training ? dropout : 0.0;
        if (offset == 0 || t == 1)
        {
            // No history, or a single new token that may see everything cached: the plain causal/no mask.
            attended = nn.functional.scaled_dot_product_attention(q, k, v, null, p, t > 1);
        }
        else
        {
            // Several new tokens after a history: token i sees every cached position and new ones up to i.
            var allowed = torch.ones(t, offset + t, dtype: ScalarType.Bool, device: x.device).tril(offset);
            attended = nn.functional.scaled_dot_product_attention(q, k, v, allowed, p, false);
        }
        var merged = attended.transpose(1, 2).reshape(b, t, m);
        var output = proj.forward(merged);
        return p > 0 ? nn.functional.dropout(output, p, training) : output;
    }
}
