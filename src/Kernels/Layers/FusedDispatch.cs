using Orleans.MoE.Kernels.Native;
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

    public override string Name => "FusedDispatch";

    /// <summary>tokens [N, M] → buffer [rows, M] for a table's destination [N·k] and row sources [rows].</summary>
    public static Tensor Apply(Tensor tokens, Tensor rowSource, Tensor destination, int k, long rows) =>
        torch.is_grad_enabled() && tokens.requires_grad
            ? apply(tokens, rowSource, destination, k, rows)
            : RoutingKernels.DispatchForward(tokens, rowSource, destination, k, rows);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var tokens = (Tensor)vars[0];
        var destination = (Tensor)vars[2];
        int k = (int)vars[3];
        ctx.save_for_backward([destination]);
        ctx.save_data(ShapeKey, (tokens.shape[0], k));
        return RoutingKernels.DispatchForward(tokens, (Tensor)vars[1], destination, k, (long)vars[4]);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
        BackwardLifetimes.Run([grad_output], () =>
        {
            var (n, k) = ((long, int))ctx.get_data(ShapeKey);
            return [RoutingKernels.DispatchBackward(grad_output, ctx.get_saved_variables()[0], n, k), null, null, null, null];
        });
}
