using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// Rows sorted by expert times each expert's weights in one launch, with the group ends on the device: libtorch's
/// grouped GEMM (<c>at::_grouped_mm</c>, bf16 on sm90 and newer), which TorchSharp does not expose, through the CUDA
/// helper (<see cref="CudaGraphLibrary"/>). Forward only (no autograd): serving uses it; training keeps one GEMM per
/// expert segment.
/// </summary>
public static unsafe class GroupedExpertGemm
{
    static readonly ConcurrentDictionary<int, bool> Probed = new();
    static readonly Lazy<IntPtr> Entry = new(() => CudaGraphLibrary.Export("moe_grouped_mm"));

    /// <summary>True when <paramref name="weights"/> (bf16 on a GPU that runs the grouped GEMM) can take this path.</summary>
    public static bool Supports(Tensor weights)
    {
        if (weights.device_type != DeviceType.CUDA || weights.dtype != ScalarType.BFloat16 || !CudaGraphLibrary.Available) return false;
        var device = weights.device;
        return Probed.GetOrAdd(device.index < 0 ? 0 : device.index, _ => Probe(device));
    }

    /// <summary>rows [T, K] (grouped by expert), weights [E, K, N], ends [E] int32 (cumulative row counts) → [T, N].</summary>
    public static Tensor Multiply(Tensor rows, Tensor weights, Tensor ends)
    {
        var call = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr>)Entry.Value;
        IntPtr result = call(rows.contiguous().Handle, weights.Handle, ends.Handle);
        if (result == IntPtr.Zero) throw new InvalidOperationException($"grouped expert GEMM failed: {CudaGraphLibrary.LastError()}");
        return Tensor.UnsafeCreateTensor(result);
    }

    /// <summary>Group ends [E] (int32, on <paramref name="device"/>) of segments of the given sizes.</summary>
    public static Tensor Ends(long[] sizes, Device device)
    {
        var ends = new int[sizes.Length];
        long sum = 0;
        for (int e = 0; e < sizes.Length; e++) ends[e] = checked((int)(sum += sizes[e]));
        return torch.tensor(ends, device: device);
    }

    // A GPU older than sm90 (or a libtorch without the kernel) refuses: then experts run one GEMM per segment.
    static bool Probe(Device device)
    {
        try
        {
            using var scope = torch.NewDisposeScope();
            var rows = torch.randn(24, 64, device: device).to_type(ScalarType.BFloat16);
            var weights = torch.randn(3, 64, 32, device: device).to_type(ScalarType.BFloat16);
            var grouped = Multiply(rows, weights, Ends([8, 0, 16], device)).to_type(ScalarType.Float32);
            var expected = torch.cat([rows.narrow(0, 0, 8).matmul(weights[0]), rows.narrow(0, 8, 16).matmul(weights[2])], 0).to_type(ScalarType.Float32);
            return (grouped - expected).abs().max().item<float>() <= 0.05 * expected.abs().max().item<float>();
        }
        catch (Exception e) when (e is InvalidOperationException or System.Runtime.InteropServices.ExternalException)
        {
            return false;
        }
    }
}
