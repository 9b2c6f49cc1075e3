using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// The router after its GEMM: softmax and top-k as one kernel forward, and backward one kernel for the logits' gradient
/// and the router GEMM's two gradient products (<see cref="RoutingKernels"/>), where TorchSharp takes a cast, a softmax
/// and a max or top-k forward and five kernels backward (the choice's scatter, a sum, the softmax's backward) before
/// the linear layer's. Outputs: the logits (differentiable, for the z-loss), probabilities [N, E] and gates [N, k] in
/// fp32, both differentiable, and the chosen experts [N, k]. With a <see cref="DispatchGradientLink"/> the tokens'
/// gradient from the dispatch is added inside the x-gradient GEMM.
/// </summary>
public sealed class FusedGate : autograd.MultiTensorFunction<FusedGate>
{
    const string TopKKey = "k";
    const string LinkKey = "link";

    public override string Name => "FusedGate";

    /// <param name="logits">input · weightᵀ (fp32 or bf16, <see cref="RoutingKernels.Supports"/>), computed without autograd history.</param>
    /// <param name="input">[N, M] what the router multiplied.</param>
    /// <param name="weight">[E, M] the router weight in the input's dtype.</param>
    public static (Tensor Logits, Tensor Probs, Tensor Gates, Tensor Chosen) Apply(Tensor logits, Tensor input, Tensor weight, int k, DispatchGradientLink? link)
    {
        if (!torch.is_grad_enabled() || !(input.requires_grad || weight.requires_grad))
        {
            var (probs, gates, chosen) = RoutingKernels.GateForward(logits, k);
            return (logits, probs, gates, chosen);
        }
        var outputs = apply(logits, input, weight, k, (object?)link ?? DispatchGradientLink.None);
        return (outputs[0], outputs[1], outputs[2], outputs[3]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var logits = (Tensor)vars[0];
        var (probs, gates, chosen) = RoutingKernels.GateForward(logits, (int)vars[3]);
        // The logits are saved rather than the probabilities: the backward recomputes probabilities and choices from
        // them (cheaper than keeping [N, E] fp32 probabilities for it).
        ctx.save_for_backward([logits, (Tensor)vars[1], (Tensor)vars[2]]);
        ctx.save_data(TopKKey, vars[3]);
        ctx.save_data(LinkKey, vars[4]);
        ctx.mark_non_differentiable([chosen]);
        // A gradient no loss reached stays missing instead of arriving as zeros: the chosen experts never get one, and
        // filling it took a kernel per backward.
        ctx.set_materialize_grads(false);
        return [logits, probs, gates, chosen];
    }

    // The unpacked tensors carry their grad_fn: a wrapper left to the finalizer kept the step's graph (down to the
    // weights' AccumulateGrad nodes) alive, which a later CUDA graph capture then found on the wrong stream.
    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardLifetimes.Run(grad_outputs, () =>
        {
            var saved = ctx.get_saved_variables();
            Tensor logits = saved[0], input = saved[1], weight = saved[2];
            Tensor? direct = Reached(grad_outputs[0]), probs = Reached(grad_outputs[1]), gates = Reached(grad_outputs[2]);
            var product = probs is null && gates is null ? null : RoutingKernels.GateBackward(logits, probs, gates, (int)ctx.get_data(TopKKey));
            if (direct is not null) product = product is null ? direct : product.add_(direct);
            var dispatched = (ctx.get_data(LinkKey) as DispatchGradientLink)?.Take();
            // As the linear layer's backward computes them; the dispatch's gradient, when handed over, is the β = 1 term.
            Tensor? inputGradient = null;
            if (input.requires_grad && dispatched is not null)
            {
                if (product is not null) dispatched.addmm_(product, weight, beta: 1, alpha: 1);
                inputGradient = dispatched.detach();  // a tensor of this dispose scope: the link's had none
            }
            else if (input.requires_grad && product is not null)
            {
                inputGradient = product.mm(weight);
            }
            dispatched?.Dispose();
            var weightGradient = product is not null && weight.requires_grad ? WeightGradient(product, input) : null;
            return [null, inputGradient, weightGradient, null, null];
        });

    /// <summary>
    /// dlogitsᵀ · input [E, M]: a short, wide product over all N tokens, for which cuBLAS's heuristic picks a split-K
    /// kernel and a reduction kernel; the tuned expert GEMM (one batch) times the candidates once and keeps the fastest.
    /// </summary>
    static Tensor WeightGradient(Tensor product, Tensor input) =>
        BatchedExpertGemm.Supports(input)
            ? BatchedExpertGemm.Multiply(product.t().unsqueeze(0), input.unsqueeze(0)).squeeze(0)
            : product.t().mm(input);

    /// <summary>The gradient, or null where autograd passed none (an undefined tensor).</summary>
    static Tensor? Reached(Tensor? gradient) => gradient is null || gradient.IsInvalid ? null : gradient;
}
