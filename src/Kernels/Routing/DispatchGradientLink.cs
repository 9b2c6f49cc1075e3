using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// Lets the router's backward add the dispatch's gradient of the tokens to its own in one GEMM (x's gradient +=
/// dlogits · W, β = 1) where autograd would run the router's GEMM and then a kernel adding the two: the router and the
/// dispatch read the same tokens. The dispatch takes one of the fused gate's outputs as an extra input
/// (<see cref="RoutingTable.GradientLink"/>'s anchor), so autograd runs the gate's backward only after the dispatch's,
/// which hands the tokens' gradient over here instead of returning it. The link keeps no output of the gate: both
/// functions' contexts hold it, and a gate output held there would keep the step's autograd graph alive for ever.
/// </summary>
public sealed class DispatchGradientLink(Tensor tokens)
{
    Tensor? handed;

    /// <summary>What an autograd function saves in place of a link: its context keeps objects, not nulls.</summary>
    internal static readonly object None = new();

    /// <summary>The tokens the router and the dispatch both read.</summary>
    public Tensor Tokens { get; } = tokens;

    /// <summary>The dispatch's backward: the tokens' gradient, owned by the link until taken (summed when a table is
    /// dispatched more than once).</summary>
    internal void Hand(Tensor gradient)
    {
        if (handed is null) handed = gradient.DetachFromDisposeScope();
        else handed.add_(gradient);
    }

    /// <summary>The gate's backward: the dispatch's gradient of the tokens (null when the dispatch had none), now the caller's.</summary>
    internal Tensor? Take()
    {
        var gradient = handed;
        handed = null;
        return gradient;
    }
}
