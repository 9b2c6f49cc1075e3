using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// A value a fused kernel already computed outside autograd (the slot kernels finish the load-balancing loss and the
/// masked combine weights while they route), given the history of a function of <c>input</c> with the gradient
/// <c>gradient(outputGradient)</c>. Recomputing either value with TorchSharp's operations just to record its history
/// took two kernels and one kernel per forward.
/// </summary>
public sealed class AttachedGradient : autograd.SingleTensorFunction<AttachedGradient>
{
    const string GradientKey = "gradient";

    public override string Name => "AttachedGradient";

    /// <summary><paramref name="value"/> as a differentiable function of <paramref name="input"/> (as it is when no
    /// gradient can reach <paramref name="input"/>). The node keeps <paramref name="gradient"/>: it must not capture the
    /// value or any tensor with an autograd history, or the node would keep itself, and the step's graph, alive.</summary>
    public static Tensor Apply(Tensor input, Tensor value, Func<Tensor, Tensor> gradient) =>
        torch.is_grad_enabled() && input.requires_grad ? apply(input, new Computed(value, gradient)) : value;

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var computed = (Computed)vars[1];
        ctx.save_data(GradientKey, computed.Gradient);
        return computed.Value;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
        BackwardLifetimes.Run([grad_output], () => [((Func<Tensor, Tensor>)ctx.get_data(GradientKey))(grad_output), null]);

    /// <summary>Passed as one argument, so that the value is not an input (autograd would return a view of an input).</summary>
    sealed record Computed(Tensor Value, Func<Tensor, Tensor> Gradient);
}
