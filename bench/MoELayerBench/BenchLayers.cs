using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// The layer every benchmark times: the shape's experts and k, capacity factor 1.25 (train and eval), min capacity
/// 4, no random token selection or noise (so variants route identically), capacity rounded to 8 on a GPU.
/// </summary>
public static class BenchLayers
{
    /// <param name="shard">The experts this rank holds (null: all); <paramref name="init"/> seeds the weights when given.</param>
    /// <param name="routerInComputeDtype">The router's GEMM in bf16 (Megatron-Core's default) instead of fp32 (DeepSpeed's).</param>
    public static MoELayer Build(BenchShape shape, bool dropTokens, Device device, ScalarType dtype, ExpertShard? shard = null, Generator? init = null, bool routerInComputeDtype = false)
    {
        bool gpu = device.type == DeviceType.CUDA;
        var settings = new GateSettings
        {
            Experts = shape.Experts,
            TopK = shape.TopK,
            CapacityFactor = 1.25,
            EvalCapacityFactor = 1.25,
            MinCapacity = 4,
            DropTokens = dropTokens,
            UseRts = false,
            SecondExpertSampling = false,
            CapacityAlignment = gpu ? 8 : 1,
            RouterInComputeDtype = routerInComputeDtype,
        };
        var layer = new MoELayer(0, shape.DModel, shape.DFf, settings, 0.02, 0, init, shard);
        layer.to(device);
        layer.to(dtype);
        layer.train();
        return layer;
    }
}
