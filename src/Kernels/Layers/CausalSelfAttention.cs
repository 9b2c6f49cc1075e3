using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Multi-head causal self-attention with an optional KV cache and optional rotary positions.</summary>
public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
{
    readonly CastLinear qkv;
    readonly CastLinear proj;
    readonly int heads;
    readonly int headSize;
    readonly TensorSlice? slice;
    readonly bool rotary;
    readonly double dropout;

    /// <param name="slice">With tensor slicing, this rank's share of the heads (null: all of them).</param>
    public CausalSelfAttention(int dModel, int heads, bool rotary, double dropout, double outputInitStd, Generator? init = null, TensorSlice? slice = null) : base("attn")
    {
        this.heads = slice?.Part(heads, "model.heads") ?? heads;
        headSize = dModel / heads;
        this.slice = slice;
        this.rotary = rotary;
        this.dropout = dropout;
        int width = this.heads * headSize;
        qkv = new CastLinear(dModel, 3 * width, init: init);
        proj = new CastLinear(width, dModel, initStd: outputInitStd, init: init);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null, 0, null);

    /// <summary>
    /// x [B, T, M] at <paramref name="positions"/> [B or 1, T] (null: 0 … T−1); with a cache, the T new positions of
    /// every row are stored in it and attend over that row's history.
    /// </summary>
    public Tensor Forward(Tensor x, IKvCache? cache, int layer, Tensor? positions)
    {
        long b = x.shape[0], t = x.shape[1], d = headSize;
        var parts = qkv.forward(x).view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4);
        Tensor q = parts[0], k = parts[1], v = parts[2];
        if (rotary)
        {
            positions ??= torch.arange(t, device: x.device).unsqueeze(0);
            q = RotaryEmbedding.Apply(q, positions);
            k = RotaryEmbedding.Apply(k, positions);
        }
        var history = cache?.Append(layer, k, v) ?? new AttentionHistory(k, v, null, true);
        double p = training ? dropout : 0.0;
        var attended = nn.functional.scaled_dot_product_attention(q, history.Keys, history.Values, history.Mask, p, history.Causal && t > 1);
        var merged = attended.transpose(1, 2).reshape(b, t, heads * d);
        var output = slice is null ? proj.forward(merged) : slice.RowParallel(proj, merged);
        return p > 0 ? nn.functional.dropout(output, p, training) : output;
    }
}
