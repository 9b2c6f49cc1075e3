using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>The transformer's feed-forward block: Linear(M, F) → GELU → Linear(F, M).</summary>
public sealed class DenseMlp : nn.Module<Tensor, Tensor>
{
    readonly CastLinear fc;
    readonly CastLinear proj;
    readonly TensorSlice? slice;

    /// <param name="slice">With tensor slicing, this rank's share of the hidden units (null: all of them).</param>
    public DenseMlp(int dModel, int dFf, double outputInitStd, Generator? init = null, TensorSlice? slice = null) : base("mlp")
    {
        this.slice = slice;
        int hidden = slice?.Part(dFf, "model.d_ff") ?? dFf;
        fc = new CastLinear(dModel, hidden, init: init);
        proj = new CastLinear(hidden, dModel, initStd: outputInitStd, init: init);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var hidden = nn.functional.gelu(fc.forward(x));
        return slice is null ? proj.forward(hidden) : slice.RowParallel(proj, hidden);
    }
}
