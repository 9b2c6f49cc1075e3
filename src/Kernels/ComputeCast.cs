using static TorchSharp.torch;

namespace Orleans.MoE.Kernels;

/// <summary>
/// Parameters stay in fp32 (the master weights); each forward casts them to the activations' dtype, so bf16
/// compute needs no second copy of the model and gradients flow back into the fp32 weights through the cast.
/// </summary>
public static class ComputeCast
{
    public static Tensor As(this Tensor weight, Tensor like) =>
        weight.dtype == like.dtype ? weight : weight.to_type(like.dtype);

    /// <summary>The dtype sums and routing run in: fp32, or fp64 when the activations are fp64 (gradient checks).</summary>
    public static ScalarType AccumulationType(this Tensor x) =>
        x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
}
