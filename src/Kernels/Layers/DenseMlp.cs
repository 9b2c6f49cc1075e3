using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>The transformer's feed-forward block: Linear(M, F) → GELU → Linear(F, M).</summary>
public sealed class DenseMlp : nn.Module<Tensor, Tensor>
{
    readonly CastLinear fc;
    readonly CastLinear proj;

    public DenseMlp(int dModel, int dFf, double outputInitStd, Generator? init = null) : base("mlp")
    {
        fc = new CastLinear(dModel, dFf, init: init);
        proj = new CastLinear(dFf, dModel, initStd: outputInitStd, init: init);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => proj.forward(nn.functional.gelu(fc.forward(x)));
}
