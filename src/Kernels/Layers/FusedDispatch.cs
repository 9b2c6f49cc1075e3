using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Tokens into the expert buffer as one kernel each way (<see cref="RoutingKernels"/>): forward a gather of token rows
/// by the table's row sources (empty rows zero), where TorchSharp copies every token k times, zero-fills the buffer and
/// scatters into it; backward each token's kept rows summed, where TorchSharp gathers and then reduces over k.
/// </summary>
public sealed class FusedDispatch : autograd.SingleTensorFunction<FusedDispatch>
{
    const string ShapeKey = "shape";
    const string LinkKey = "link";

    public override string Name => "FusedDispatch";

    /// <summary>tokens [N, M] → buffer [rows, M] for a table's destination [N·k] and row sources [rows]. With a
    /// <paramref name="link"/> (<see cref="RoutingTable.GradientLink"/>) for these tokens, the tokens' gradient goes to
    /// the router's backward through it.</summary>
    public static Tensor Apply(Tensor tokens, Tensor rowSource, Tensor destination, int k, long rows, (DispatchGradientLink Link, Tensor Anchor)? link = null)
    {
        if (!torch.is_grad_enabled() || !tokens.requires_grad) return RoutingKernels.DispatchForward(tokens, rowSource, destination, k, rows);
        return link is var (linked, anchor) && ReferenceEquals(linked.Tokens, tokens)
            ? apply(tokens, rowSource, destination, k, rows, linked, anchor)
            : apply(tokens, rowSource, destination, k, rows);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var tokens = (Tensor)vars[0];
        var destination = (Tensor)vars[2];
        int k = (int)vars[3];
        ctx.save_for_backward([destination]);
        ctx.save_data(ShapeKey, (tokens.shape[0], k));
        ctx.save_data(LinkKey, vars.Length > 5 ? vars[5] : DispatchGradientLink.None);
        return RoutingKernels.DispatchForward(tokens, (Tensor)vars[1], destination, k, (long)vars[4]);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
        BackwardLifetimes.Run([grad_output], () =>
        {
            var (n, k) = ((long, int))ctx.get_data(ShapeKey);
            var gradient = RoutingKernels.DispatchBackward(grad_output, ctx.get_saved_variables()[0], n, k);
            if (ctx.get_data(LinkKey) is not DispatchGradientLink link) return [gradient, null, null, null, null];
            link.Hand(gradient);
            return [null, null, null, null, null, null, null];
        });
}
