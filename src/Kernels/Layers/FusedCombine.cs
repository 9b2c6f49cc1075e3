using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Expert outputs back to the tokens as one kernel each way (<see cref="RoutingKernels"/>): forward each token's kept
/// rows weighted and summed in fp32; backward, per buffer row, the output's gradient (weight × the token's gradient,
/// zeros for empty rows) and the weight's (their dot product). TorchSharp takes a gather, casts, a product and a sum
/// forward (for k = 2: 632 µs at 16k tokens on an H200) and about as many kernels backward.
/// </summary>
public sealed class FusedCombine : autograd.MultiTensorFunction<FusedCombine>
{
    const string ShapeKey = "shape";

    public override string Name => "FusedCombine";

    /// <summary>outputs [rows, M] and weights [N, k] (fp32) → tokens [N, M] for a table's destination and row sources.</summary>
    public static Tensor Apply(Tensor output, Tensor weights, Tensor rowSource, Tensor destination, long n, int k) =>
        torch.is_grad_enabled() && (output.requires_grad || weights.requires_grad)
            ? apply(output, weights, rowSource, destination, n, k)[0]
            : RoutingKernels.CombineForward(output, destination, weights, n, k);

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var output = (Tensor)vars[0];
        var weights = (Tensor)vars[1];
        var destination = (Tensor)vars[3];
        long n = (long)vars[4];
        int k = (int)vars[5];
        ctx.save_for_backward([output, weights, (Tensor)vars[2], destination]);
        ctx.save_data(ShapeKey, k);
        return [RoutingKernels.CombineForward(output, destination, weights, n, k)];
    }

    // The unpacked outputs and weights carry their grad_fn: a wrapper left to the finalizer would keep the step's graph alive.
    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardLifetimes.Run(grad_outputs, () =>
        {
            var saved = ctx.get_saved_variables();
            var (output, weights) = RoutingKernels.CombineBackward(grad_outputs[0], saved[0], saved[2], saved[3], saved[1], (int)ctx.get_data(ShapeKey));
            return [output, weights, null, null, null, null];
        });
}
