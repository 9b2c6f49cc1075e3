using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>ncclDataType_t and ncclRedOp_t values (nccl.h). Moves use bytes (<see cref="Uint8"/>) whatever the dtype.</summary>
static class NcclDataTypes
{
    public const int Uint8 = 1;

    public static int Of(ScalarType type) => type switch
    {
        ScalarType.Int8 => 0,
        ScalarType.Byte => Uint8,
        ScalarType.Int32 => 2,
        ScalarType.Int64 => 4,
        ScalarType.Float16 => 6,
        ScalarType.Float32 => 7,
        ScalarType.Float64 => 8,
        ScalarType.BFloat16 => 9,
        _ => throw new NotSupportedException($"NCCL reductions do not support {type}"),
    };

    public static int Of(ReduceOperation operation) => operation switch
    {
        ReduceOperation.Sum => 0,
        ReduceOperation.Max => 2,
        _ => throw new NotSupportedException($"NCCL backend has no reduction {operation}"),
    };
}
