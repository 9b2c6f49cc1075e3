using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>What the router's GEMM multiplies, and its logits in fp32 for the softmax.</summary>
public static class RouterInput
{
    /// <summary>x in fp32 (DeepSpeed) or as it is (<see cref="GateSettings.RouterInComputeDtype"/>).</summary>
    public static Tensor Of(Tensor x, GateSettings settings) => settings.RouterInComputeDtype ? x : x.to_type(x.AccumulationType());

    /// <summary>x·Wᵀ for an input from <see cref="Of"/>, in the input's accumulation type (fp32 for bf16; a no-op when
    /// the input already is one).</summary>
    public static Tensor Logits(Tensor input, Tensor weight) => Product(input, weight).to_type(input.AccumulationType());

    /// <summary>x·Wᵀ in the input's dtype (a fused gate reads bf16 logits itself).</summary>
    public static Tensor Product(Tensor input, Tensor weight) => nn.functional.linear(input, weight.to_type(input.dtype));
}
