using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>The activations' dtype for a <c>training.precision</c> setting on a device (weights stay fp32).</summary>
public static class ComputePrecision
{
    public static ScalarType For(string precision, Device device) => precision switch
    {
        "bf16" => ScalarType.BFloat16,
        "fp32" => ScalarType.Float32,
        _ => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
    };
}
