using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// y[i] = x[i] · W[experts[i]] for rows whose experts were chosen on the device. On a GPU with the CUDA helper
/// (<see cref="CudaGraphLibrary"/>) this is one batched cuBLAS GEMM reading each chosen expert's weights in place;
/// otherwise the experts' weights are gathered (a copy of every row's expert) and multiplied with one bmm. Both read
/// nothing back to the host, so both can run inside a captured CUDA graph.
/// </summary>
public static unsafe class GatheredExpertGemm
{
    static readonly Lazy<IntPtr> Entry = new(() => CudaGraphLibrary.Export("moe_gathered_gemm"));

    /// <summary>True when operands like <paramref name="operand"/> (only its dtype and device are read) would go
    /// through the in-place cuBLAS path.</summary>
    public static bool InPlace(Tensor operand) =>
        operand.device_type == DeviceType.CUDA && operand.dtype is ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32 && CudaGraphLibrary.Available;

    /// <summary>x [n, K], weights [E, K, N], experts [n] (int64) → [n, N].</summary>
    public static Tensor Multiply(Tensor x, Tensor weights, Tensor experts)
    {
        if (!InPlace(weights) || x.dtype != weights.dtype) return Gathered(x, weights, experts);
        var rows = x.contiguous();
        var chosen = experts.contiguous();
        var output = torch.empty(x.shape[0], weights.shape[2], dtype: weights.dtype, device: weights.device);
        var call = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, int>)Entry.Value;
        if (call(rows.Handle, weights.contiguous().Handle, chosen.Handle, output.Handle) != 0)
            throw CudaGraphLibrary.Failure("gathered expert GEMM");
        return output;
    }

    /// <summary>The reference: every row's expert weights copied out, then one batched GEMM.</summary>
    public static Tensor Gathered(Tensor x, Tensor weights, Tensor experts) =>
        torch.bmm(x.unsqueeze(1), weights.index_select(0, experts)).squeeze(1);
}
