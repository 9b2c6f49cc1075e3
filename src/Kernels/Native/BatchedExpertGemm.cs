using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// The capacity layout's expert GEMMs ([E, C, K] · [E, K, N]), forward and both gradients, each run by whichever ran
/// fastest for its shape (timed once, outside CUDA graph capture) of cuBLASLt's candidate algorithms and cuBLAS's
/// strided batched GEMM; torch.bmm always takes that cuBLAS call's first heuristic. Through the CUDA helper (<see cref="CudaGraphLibrary"/>, expert_bmm.cpp).
/// <c>MOE_EXPERT_GEMM=first</c> keeps cuBLASLt's first heuristic (the same kernels every run, so bit-identical runs);
/// <c>MOE_EXPERT_GEMM=bmm</c> turns this path off (torch.bmm).
/// </summary>
public static unsafe class BatchedExpertGemm
{
    static readonly Lazy<IntPtr> Entry = new(() => CudaGraphLibrary.Export("moe_expert_bmm"));

    /// <summary>False sends every call to torch.bmm (for comparisons in one run, and <c>MOE_EXPERT_GEMM=bmm</c>).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOE_EXPERT_GEMM") != "bmm";

    /// <summary>True when operands like <paramref name="operand"/> (bf16 or fp16 on a GPU, with the helper built) take this path.</summary>
    public static bool Supports(Tensor operand) =>
        Enabled && operand.device_type == DeviceType.CUDA && (operand.dtype is ScalarType.BFloat16 or ScalarType.Float16) && CudaGraphLibrary.Available;

    /// <summary>x [E, C, K] · w [E, K, N] → [E, C, N], differentiable in both (one dtype, one GPU).</summary>
    public static Tensor Multiply(Tensor x, Tensor w)
    {
        var call = (delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Entry.Value;
        return CudaGraphLibrary.TakeTensor(call(x.Handle, w.Handle), "batched expert GEMM");
    }

    /// <summary><see cref="Multiply"/> where supported, torch.bmm elsewhere (CPU, fp32, no helper).</summary>
    public static Tensor MultiplyOrBmm(Tensor x, Tensor w) => Supports(x) ? Multiply(x, w) : torch.bmm(x, w);
}
