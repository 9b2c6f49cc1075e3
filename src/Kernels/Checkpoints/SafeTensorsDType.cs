using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>Maps between TorchSharp element types and safetensors dtype codes.</summary>
internal static class SafeTensorsDType
{
    public static string CodeOf(ScalarType type) => type switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float16 => "F16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        _ => throw new NotSupportedException(
            $"safetensors writing supports float32, float64, bfloat16, float16, int64 and int32, not {type}"),
    };

    public static bool TryParse(string code, out ScalarType type, out int elementSize)
    {
        (type, elementSize) = code switch
        {
            "F32" => (ScalarType.Float32, 4),
            "F64" => (ScalarType.Float64, 8),
            "BF16" => (ScalarType.BFloat16, 2),
            "F16" => (ScalarType.Float16, 2),
            "I64" => (ScalarType.Int64, 8),
            "I32" => (ScalarType.Int32, 4),
            _ => (ScalarType.Byte, 0),
        };
        return elementSize != 0;
    }
}
