using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// E · Σₑ meanₜ(pₑ) · fₑ per routing group, averaged over groups. fₑ is the fraction of tokens whose first choice
/// is e for top-1 and top-2 (DeepSpeed's top1gating/top2gating) and the fraction of all k choices for k &gt; 2
/// (DeepSpeed's topkgating: mean(me·ce)·E²/k). Both routers count the choices their own way and share this.
/// </summary>
public static class LoadBalancingLoss
{
    /// <param name="probs">[N, E] router probabilities, N = groups · G.</param>
    /// <param name="routed">[groups, E] first choices per expert (k ≤ 2) or all choices per expert (k &gt; 2).</param>
    public static Tensor Compute(Tensor probs, Tensor routed, int groups, int topK)
    {
        long e = probs.shape[1], g = probs.shape[0] / groups;
        // mean over groups of E · Σₑ meanₜ(p) · routed / choices counted = Σ over every probability of p · routed · scale,
        // with the scale folded into the counts as they become floats: three kernels (and one for the backward).
        double scale = (double)e / ((double)groups * g * g * (topK <= 2 ? 1 : topK));
        // An integer tensor times a double is a float32 tensor (the probabilities' dtype) in one kernel.
        var weighted = routed.mul(scale);
        if (weighted.dtype != probs.dtype) weighted = weighted.to_type(probs.dtype);
        weighted = weighted.unsqueeze(1);
        return (probs.view(groups, g, e) * weighted).sum();
    }
}
