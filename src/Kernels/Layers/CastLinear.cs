using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>y = x·Wᵀ + b with fp32 weights cast to the input's dtype.</summary>
public sealed class CastLinear : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter? bias;

    public CastLinear(long inFeatures, long outFeatures, bool hasBias = true, double initStd = 0.02, Generator? init = null) : base("linear")
    {
        weight = nn.Parameter(torch.empty(outFeatures, inFeatures));
        ParameterInit.Normal(weight, initStd, init);
        if (hasBias) bias = nn.Parameter(torch.zeros(outFeatures));
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public Parameter? Bias => bias;

    /// <remarks>
    /// Inputs of more than two dimensions go through as [rows, in]: libtorch then adds the bias inside the GEMM
    /// (addmm) instead of in a kernel of its own, one launch fewer per layer in every decode step.
    /// </remarks>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() <= 2) return nn.functional.linear(x, weight.As(x), bias?.As(x));
        long[] shape = x.shape;
        shape[^1] = weight.shape[0];
        return nn.functional.linear(x.reshape(-1, x.shape[^1]), weight.As(x), bias?.As(x)).view(shape);
    }
}
