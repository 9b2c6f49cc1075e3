using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm.Mpi;

/// <summary>How tensors look to MPI: rows as opaque bytes for moves, element types for reductions.</summary>
static class MpiDataTypes
{
    /// <summary>
    /// The element type MPI reduces, or null for half-precision types, which MPI cannot add: those are reduced
    /// through a float32 copy.
    /// </summary>
    public static int? Reducible(ScalarType type) => type switch
    {
        ScalarType.Float32 => MpiNative.Float,
        ScalarType.Float64 => MpiNative.Double,
        ScalarType.Int32 => MpiNative.Int32,
        ScalarType.Int64 => MpiNative.Int64,
        ScalarType.BFloat16 or ScalarType.Float16 => null,
        _ => throw new NotSupportedException($"MPI reductions support float32, float64, int32, int64, bfloat16 and float16, not {type}"),
    };

    /// <summary>
    /// A datatype of one row's bytes, so that counts and offsets are in rows: a tensor of up to 2³¹ − 1 rows moves in
    /// one call whatever its byte size. Free it with <see cref="Free"/>.
    /// </summary>
    public static int Row(Tensor tensor)
    {
        long bytes = RowSplits.RowElements(tensor) * tensor.ElementSize;
        MpiNative.Check(MpiNative.MPI_Type_contiguous(Count(bytes, "bytes in one row"), MpiNative.Byte, out int row), "Type_contiguous");
        MpiNative.Check(MpiNative.MPI_Type_commit(ref row), "Type_commit");
        return row;
    }

    public static void Free(int type) => MpiNative.MPI_Type_free(ref type);

    /// <summary>MPI counts are ints; larger ones are rejected rather than silently wrapped.</summary>
    public static int Count(long value, string what) =>
        value <= int.MaxValue ? (int)value : throw new NotSupportedException($"{value} {what} exceed MPI's int count limit ({int.MaxValue})");
}
