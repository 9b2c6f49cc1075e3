using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// Rows sorted by expert times each expert's weights in one launch, with the group ends on the device: libtorch's
/// grouped GEMM (<c>at::_grouped_mm</c>, bf16 on sm90 and newer), which TorchSharp does not expose, through the CUDA
/// helper (<see cref="CudaGraphLibrary"/>). Called from C++ with autograd on, it records libtorch's own backward (grouped
/// GEMMs for the rows' and the weights' gradients), so training uses it too.
/// </summary>
public static unsafe class GroupedExpertGemm
{
    static readonly ConcurrentDictionary<int, int> Probed = new();
    static readonly Lazy<IntPtr> Entry = new(() => CudaGraphLibrary.Export("moe_grouped_mm"));

    /// <summary>True when operands like <paramref name="operand"/> (bf16 on a GPU that runs the grouped GEMM) can take this path.</summary>
    public static bool Supports(Tensor operand) => RowAlignment(operand) > 0;

    /// <summary>
    /// The multiple of rows every expert's group must start at for correct results forward and backward: 1 where any
    /// group sizes work, 8 (16 bytes of bf16) where only aligned groups do; 0 where the grouped GEMM is unusable.
    /// Only <paramref name="operand"/>'s dtype and device are read (any operand of the GEMM will do, uncast).
    /// </summary>
    public static int RowAlignment(Tensor operand)
    {
        if (operand.device_type != DeviceType.CUDA || operand.dtype != ScalarType.BFloat16 || !CudaGraphLibrary.Available) return 0;
        var device = operand.device;
        return Probed.GetOrAdd(CudaDriver.OrdinalOf(device), _ => Probe(device));
    }

    /// <summary>rows [T, K] (grouped by expert), weights [E, K, N], ends [E] int32 (cumulative row counts) → [T, N].</summary>
    public static Tensor Multiply(Tensor rows, Tensor weights, Tensor ends) => Call(rows.contiguous(), weights, ends, "grouped expert GEMM");

    /// <summary>
    /// Each group's rowsᵀ · gradient: rows [T, P] and gradient [T, Q] (grouped by expert, ends [E]) → [E, P, Q], the
    /// weights' gradient of <see cref="Multiply"/> as libtorch's own backward computes it (rows passed transposed).
    /// </summary>
    public static Tensor WeightGradient(Tensor rows, Tensor gradient, Tensor ends)
    {
        using var transposed = rows.contiguous().t();
        return Call(transposed, gradient.contiguous(), ends, "grouped expert weight gradient");
    }

    /// <summary>libtorch's <c>at::_grouped_mm(a, b, ends)</c> as the helper exports it.</summary>
    static Tensor Call(Tensor a, Tensor b, Tensor ends, string what)
    {
        var call = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr>)Entry.Value;
        return CudaGraphLibrary.TakeTensor(call(a.Handle, b.Handle, ends.Handle), what);
    }

    /// <summary>Group ends [E] (int32, on <paramref name="device"/>) of segments of the given sizes.</summary>
    public static Tensor Ends(long[] sizes, Device device)
    {
        var ends = new int[sizes.Length];
        long sum = 0;
        for (int e = 0; e < sizes.Length; e++) ends[e] = checked((int)(sum += sizes[e]));
        return torch.tensor(ends, device: device);
    }

    // A GPU older than sm90 (or a libtorch without the kernel or its backward) refuses, and a kernel that needs aligned
    // groups gives wrong gradients for unaligned ones: groups of any size first, then of multiples of 8.
    static int Probe(Device device)
    {
        if (Correct([5, 0, 19], device)) return 1;
        return Correct([8, 0, 16], device) ? 8 : 0;
    }

    static bool Correct(long[] sizes, Device device)
    {
        try
        {
            using var scope = torch.NewDisposeScope();
            using var grad = torch.enable_grad();
            long total = sizes.Sum();
            var rows = torch.randn(total, 64, device: device).to_type(ScalarType.BFloat16).requires_grad_();
            var weights = torch.randn(sizes.Length, 64, 32, device: device).to_type(ScalarType.BFloat16).requires_grad_();
            var probe = torch.randn(total, 32, device: device);
            var grouped = Multiply(rows, weights, Ends(sizes, device)).to_type(ScalarType.Float32);
            var (rowsGrad, weightsGrad) = Gradients(grouped, probe, rows, weights);
            var segments = rows.split(sizes, 0);
            var expected = torch.cat(segments.Select((segment, e) => segment.matmul(weights[e])).ToArray(), 0).to_type(ScalarType.Float32);
            var (expectedRowsGrad, expectedWeightsGrad) = Gradients(expected, probe, rows, weights);
            return Close(grouped, expected) && Close(rowsGrad, expectedRowsGrad) && Close(weightsGrad, expectedWeightsGrad);
        }
        catch (Exception e) when (e is InvalidOperationException or System.Runtime.InteropServices.ExternalException)
        {
            return false;
        }
    }

    static (Tensor Rows, Tensor Weights) Gradients(Tensor output, Tensor probe, Tensor rows, Tensor weights)
    {
        var grads = torch.autograd.grad([(output * probe).sum()], [rows, weights]);
        return (grads[0].to_type(ScalarType.Float32), grads[1].to_type(ScalarType.Float32));
    }

    static bool Close(Tensor actual, Tensor expected) =>
        (actual.to_type(ScalarType.Float32) - expected).abs().max().item<float>() <= 0.05 * expected.abs().max().item<float>() + 1e-3;
}
