using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)) where the MLP is dense, MoE or residual MoE.</summary>
public sealed class DecoderBlock : nn.Module<Tensor, Tensor>
{
    readonly CastLayerNorm ln1;
    readonly CausalSelfAttention attn;
    readonly CastLayerNorm ln2;
    readonly nn.Module<Tensor, Tensor> mlp;
    readonly double dropout;

    public DecoderBlock(int index, CausalSelfAttention attention, nn.Module<Tensor, Tensor> feedForward, int dModel, double dropout) : base($"block{index}")
    {
        Index = index;
        this.dropout = dropout;
        ln1 = new CastLayerNorm(dModel);
        attn = attention;
        ln2 = new CastLayerNorm(dModel);
        mlp = feedForward;
        RegisterComponents();
    }

    public int Index { get; }

    /// <summary>The block's MoE layer (plain or inside a residual MoE), or null for a dense block.</summary>
    public MoELayer? Moe => mlp switch
    {
        MoELayer moe => moe,
        ResidualMoE residual => residual.Moe,
        _ => null,
    };

    public override Tensor forward(Tensor x) => Forward(x, null, null);

    /// <summary>x [B, T, M] at positions [B or 1, T] (null: 0 … T−1); the cache (if any) holds the rows' earlier positions.</summary>
    public Tensor Forward(Tensor x, IKvCache? cache, Tensor? positions)
    {
        x = x + attn.Forward(ln1.forward(x), cache, Index, positions);
        var y = mlp.forward(ln2.forward(x));
        if (training && dropout > 0) y = nn.functional.dropout(y, dropout, training);
        return x + y;
    }
}
