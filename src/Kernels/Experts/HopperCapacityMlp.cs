using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Experts;

/// <summary>
/// The capacity layout's expert MLP, buffer [E, C, M] → gelu(buffer · W1[e]) · W2[e], for buffers of at most 160 tokens
/// an expert (<see cref="HopperExpertGemm.SupportsCapacity"/>): the two products with a GELU beside them run in our
/// swapped-tile kernels with the GELU in the epilogue (x·W1 → pre and gelu(pre); dy·W2ᵀ → gelu'(pre)·(dy·W2ᵀ)), the
/// other four (h·W2, dpre·W1ᵀ and both weight gradients) in cuBLASLt's tuned batched GEMM
/// (<see cref="BatchedExpertGemm"/>), which is faster than our kernels there. Saves what the plain path saves (the
/// pre-activations and the hidden activations) and computes the same values.
/// </summary>
public sealed class HopperCapacityMlp : autograd.MultiTensorFunction<HopperCapacityMlp>
{
    public override string Name => "HopperCapacityMlp";

    /// <summary>buffer [E, C, M], W1 [E, M, F], W2 [E, F, M] → [E, C, M].</summary>
    public static Tensor Apply(Tensor buffer, Tensor w1, Tensor w2)
    {
        // Expert e's rows end at (e + 1)·C of the flattened buffer.
        long capacity = buffer.shape[1];
        using var ends = torch.arange(capacity, capacity * (buffer.shape[0] + 1), capacity, dtype: ScalarType.Int32, device: buffer.device);
        return torch.is_grad_enabled() && (buffer.requires_grad || w1.requires_grad || w2.requires_grad)
            ? apply(buffer, w1, w2, ends)[0]
            : Compute(buffer, w1, w2, ends).Output;
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var buffer = (Tensor)vars[0];
        var w1 = (Tensor)vars[1];
        var w2 = (Tensor)vars[2];
        var ends = (Tensor)vars[3];
        var (output, rows, pre, hidden) = Compute(buffer, w1, w2, ends);
        ctx.save_for_backward([rows, w1, w2, ends, pre, hidden]);
        return [output];
    }

    /// <summary>The output and what the backward needs: the buffer as rows, the pre-activations and gelu of them.</summary>
    static (Tensor Output, Tensor Rows, Tensor Pre, Tensor Hidden) Compute(Tensor buffer, Tensor w1, Tensor w2, Tensor ends)
    {
        // Expert e's rows, as a [E·C, M] matrix.
        var rows = buffer.contiguous().view(buffer.shape[0] * buffer.shape[1], buffer.shape[2]);
        var (pre, hidden) = HopperExpertGemm.FirstSwapped(rows, w1, ends);
        using var noGrad = torch.no_grad();
        return (BatchedExpertGemm.Multiply(hidden.view(buffer.shape[0], buffer.shape[1], -1), w2), rows, pre, hidden);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardLifetimes.Run(grad_outputs, () =>
        {
            var saved = ctx.get_saved_variables();
            Tensor rows = saved[0], w1 = saved[1], w2 = saved[2], ends = saved[3], pre = saved[4], hidden = saved[5];
            var gradient = grad_outputs[0].contiguous();
            long experts = gradient.shape[0], capacity = gradient.shape[1];
            var preGradient = HopperExpertGemm.PreGradientSwapped(gradient.view(experts * capacity, -1), w2, pre, ends).view(experts, capacity, -1);
            using var noGrad = torch.no_grad();
            return
            [
                BatchedExpertGemm.Multiply(preGradient, w1.transpose(1, 2)),
                BatchedExpertGemm.Multiply(rows.view(experts, capacity, -1).transpose(1, 2), preGradient),
                BatchedExpertGemm.Multiply(hidden.view(experts, capacity, -1).transpose(1, 2), gradient),
                null,
            ];
        });
}
