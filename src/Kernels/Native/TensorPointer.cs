using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// The address of a tensor's first element, for native libraries (MPI, NCCL) that read and write tensors in place.
/// TorchSharp's <c>storage&lt;T&gt;()</c> throws for bfloat16 and ignores views' offsets; libtorch's own
/// <c>data_ptr</c>, exported by LibTorchSharp as <c>THSTensor_data</c>, works for every dtype and includes the
/// storage offset.
/// </summary>
public static partial class TensorPointer
{
    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr tensor);

    /// <summary>The first element's address; the tensor must be contiguous so that rows are consecutive bytes.</summary>
    public static IntPtr Of(Tensor tensor, string name)
    {
        if (!tensor.is_contiguous()) throw new ArgumentException($"{name} must be contiguous (call .contiguous() first)");
        var address = THSTensor_data(tensor.Handle);
        GC.KeepAlive(tensor);
        return address;
    }

    public static long ByteCount(Tensor tensor) => tensor.numel() * tensor.ElementSize;
}
