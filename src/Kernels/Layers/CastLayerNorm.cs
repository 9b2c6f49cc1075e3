using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>LayerNorm with fp32 parameters cast to the input's dtype.</summary>
public sealed class CastLayerNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter bias;
    readonly long width;

    public CastLayerNorm(long width) : base("ln")
    {
        this.width = width;
        weight = nn.Parameter(torch.ones(width));
        bias = nn.Parameter(torch.zeros(width));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        nn.functional.layer_norm(x, [width], weight.As(x), bias.As(x), 1e-5);
}
