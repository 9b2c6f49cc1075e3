using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Residual MoE (DeepSpeed-MoE §4.1): a dense MLP beside the experts, mixed per token by a learned two-way
/// softmax, out = c₀·MoE(x) + c₁·MLP(x), so top-1 routing gets the quality of top-2 with top-1 communication.
/// </summary>
public sealed class ResidualMoE : nn.Module<Tensor, Tensor>
{
    readonly MoELayer moe;
    readonly DenseMlp mlp;
    readonly CastLinear coefficient;

    public ResidualMoE(MoELayer moe, DenseMlp mlp, int dModel, Generator? init = null) : base("residual_moe")
    {
        this.moe = moe;
        this.mlp = mlp;
        coefficient = new CastLinear(dModel, 2, init: init);
        RegisterComponents();
    }

    public MoELayer Moe => moe;

    public override Tensor forward(Tensor x)
    {
        var accumulate = x.AccumulationType();
        if (!training && x.dtype != accumulate)
        {
            // Serving in bf16: the mix in the activations' dtype, three launches fewer per layer than in fp32 (a decode
            // step is bound by its launches); the two-way softmax stays in fp32.
            var mix = coefficient.forward(x).to_type(accumulate).softmax(-1).to_type(x.dtype);
            return torch.addcmul(moe.forward(x) * mix.narrow(-1, 0, 1), mlp.forward(x), mix.narrow(-1, 1, 1), 1);
        }
        var c = coefficient.forward(x).to_type(accumulate).softmax(-1);
        var mixed = moe.forward(x).to_type(accumulate) * c.narrow(-1, 0, 1)
                    + mlp.forward(x).to_type(accumulate) * c.narrow(-1, 1, 1);
        return mixed.to_type(x.dtype);
    }
}
