using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Experts;

/// <summary>
/// The dropless experts' MLP, rows grouped by expert → gelu(rows · W1[e]) · W2[e], with its four data products and both
/// GELU passes in our Hopper grouped GEMM (<see cref="HopperExpertGemm"/>) and the two weight gradients in libtorch's
/// (<see cref="GroupedExpertGemm.WeightGradient"/>). Saves what libtorch's path saves (the pre-activations and the
/// hidden activations) and computes the same values.
/// </summary>
public sealed class HopperExpertMlp : autograd.MultiTensorFunction<HopperExpertMlp>
{
    public override string Name => "HopperExpertMlp";

    /// <summary>rows [R, M] grouped by <paramref name="ends"/> ([E] int32), W1 [E, M, F], W2 [E, F, M] → [R, M].</summary>
    public static Tensor Apply(Tensor rows, Tensor w1, Tensor w2, Tensor ends) =>
        torch.is_grad_enabled() && (rows.requires_grad || w1.requires_grad || w2.requires_grad)
            ? apply(rows, w1, w2, ends)[0]
            : HopperExpertGemm.Second(HopperExpertGemm.First(rows, w1, ends).Hidden, w2, ends);

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var rows = (Tensor)vars[0];
        var w1 = (Tensor)vars[1];
        var w2 = (Tensor)vars[2];
        var ends = (Tensor)vars[3];
        var (pre, hidden) = HopperExpertGemm.First(rows, w1, ends);
        ctx.save_for_backward([rows, w1, w2, ends, pre, hidden]);
        return [HopperExpertGemm.Second(hidden, w2, ends)];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardLifetimes.Run(grad_outputs, () =>
        {
            var saved = ctx.get_saved_variables();
            Tensor rows = saved[0], w1 = saved[1], w2 = saved[2], ends = saved[3], pre = saved[4], hidden = saved[5];
            var gradient = grad_outputs[0].contiguous();
            var preGradient = HopperExpertGemm.PreGradient(gradient, w2, pre, ends);
            return
            [
                HopperExpertGemm.RowsGradient(preGradient, w1, ends),
                GroupedExpertGemm.WeightGradient(rows, preGradient, ends),
                GroupedExpertGemm.WeightGradient(hidden, gradient, ends),
                null,
            ];
        });
}
