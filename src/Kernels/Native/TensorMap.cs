using System.Runtime.InteropServices;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// A CUDA tensor map (<c>CUtensorMap</c>, 128 opaque bytes): how the copy engine (TMA) reads tiles of a matrix in global
/// memory into shared memory. Made on the host, passed to a kernel by value (a CUDA graph keeps the copy it captured).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
unsafe struct TensorMap
{
    const int Bytes = 128;
    const int DataTypeBFloat16 = 9;
    const int Swizzle128Bytes = 3;
    const int L2Promotion256Bytes = 3;

    fixed ulong words[Bytes / sizeof(ulong)];

    /// <summary>
    /// A row-major bf16 matrix of <paramref name="rows"/> × <paramref name="inner"/> at <paramref name="address"/>, read
    /// in boxes of <paramref name="boxRows"/> rows × 64 columns (128 bytes, the width of the 128-byte swizzle); rows
    /// past the end read as zeros.
    /// </summary>
    public static TensorMap Bf16Rows(IntPtr address, long rows, long inner, int boxRows)
    {
        // The driver writes the map only to a 64-byte-aligned address.
        byte* scratch = stackalloc byte[Bytes + 64];
        var aligned = (byte*)(((nint)scratch + 63) & ~(nint)63);
        ulong* dimensions = stackalloc ulong[] { (ulong)inner, (ulong)rows };
        ulong* strides = stackalloc ulong[] { (ulong)inner * sizeof(short) };
        uint* box = stackalloc uint[] { 64, (uint)boxRows };
        uint* elementStrides = stackalloc uint[] { 1, 1 };
        CudaDriver.Check(CudaDriver.cuTensorMapEncodeTiled(aligned, DataTypeBFloat16, 2, address, dimensions, strides, box, elementStrides,
            0, Swizzle128Bytes, L2Promotion256Bytes, 0), $"cuTensorMapEncodeTiled ({rows} × {inner}, boxes of {boxRows} × 64)");
        return *(TensorMap*)aligned;
    }
}
