using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// The router's softmax and top-k as one kernel forward and one backward (<see cref="RoutingKernels"/>), where
/// TorchSharp takes a cast, a softmax and a max or top-k forward and five kernels backward (the choice's scatter, a sum,
/// the softmax's backward). Outputs: probabilities [N, E] and gates [N, k] in fp32, both differentiable, and the
/// chosen experts [N, k]. The logits' gradient comes back in the logits' dtype.
/// </summary>
public sealed class FusedGate : autograd.MultiTensorFunction<FusedGate>
{
    const string TopKKey = "k";

    public override string Name => "FusedGate";

    /// <summary>logits [N, E] (fp32 or bf16, <see cref="RoutingKernels.Supports"/>) → (probabilities, gates, chosen).</summary>
    public static (Tensor Probs, Tensor Gates, Tensor Chosen) Apply(Tensor logits, int k)
    {
        if (!torch.is_grad_enabled() || !logits.requires_grad) return RoutingKernels.GateForward(logits, k);
        var outputs = apply(logits, k);
        return (outputs[0], outputs[1], outputs[2]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var logits = (Tensor)vars[0];
        int k = (int)vars[1];
        var (probs, gates, chosen) = RoutingKernels.GateForward(logits, k);
        // Only the logits are saved: the backward recomputes probabilities and choices from them (cheaper than keeping
        // [N, E] fp32 probabilities for it).
        ctx.save_for_backward([logits]);
        ctx.save_data(TopKKey, k);
        ctx.mark_non_differentiable([chosen]);
        // A gradient no loss reached stays missing instead of arriving as zeros: the chosen experts never get one, and
        // filling it took a kernel per backward.
        ctx.set_materialize_grads(false);
        return [probs, gates, chosen];
    }

    // The unpacked logits carry their grad_fn: a wrapper left to the finalizer kept the step's graph (down to the
    // weights' AccumulateGrad nodes) alive, which a later CUDA graph capture then found on the wrong stream.
    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardLifetimes.Run(grad_outputs, () =>
            [RoutingKernels.GateBackward(ctx.get_saved_variables()[0], Reached(grad_outputs[0]), Reached(grad_outputs[1]), (int)ctx.get_data(TopKKey)), null]);

    /// <summary>The gradient, or null where autograd passed none (an undefined tensor).</summary>
    static Tensor? Reached(Tensor? gradient) => gradient is null || gradient.IsInvalid ? null : gradient;
}
