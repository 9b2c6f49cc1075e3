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
        // An integer tensor times a double is a float32 tensor (the probabilities' dtype) in one kernel; with the product
        // and the sum, three kernels forward (one backward).
        var weighted = routed.mul(Scale(e, groups, g, topK));
        if (weighted.dtype != probs.dtype) weighted = weighted.to_type(probs.dtype);
        return (probs.view(groups, g, e) * weighted.unsqueeze(1)).sum();
    }

    /// <summary>
    /// One routing group's loss from counts already scaled (<paramref name="weighted"/> [E] fp32: the routing kernels'
    /// <c>Balance</c>) where the kernels did not finish it: two kernels.
    /// </summary>
    public static Tensor FromWeighted(Tensor probs, Tensor weighted) => (probs * weighted).sum();

    /// <summary>
    /// What each counted choice weighs: mean over groups of E · Σₑ meanₜ(p) · routed / choices counted = Σ over every
    /// probability of p · routed · scale, so the scale folds into the counts as they become floats.
    /// </summary>
    public static double Scale(long experts, int groups, long groupTokens, int topK) =>
        (double)experts / ((double)groups * groupTokens * groupTokens * (topK <= 2 ? 1 : topK));
}
