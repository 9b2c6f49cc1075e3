using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>The model of one process over a slot KV cache.</summary>
public sealed class LocalBatchForward : IBatchForward
{
    readonly GptModel model;
    readonly Device device;
    readonly SlotKvCache cache;

    /// <summary>
    /// Makes <paramref name="model"/> an inference model: eval mode, dropless routing (with a capacity, which tokens
    /// drop depends on the other tokens in the call, so a request's output would change with what it is batched
    /// with), and weights in the compute dtype (bf16 on a GPU: fp32 weights would be cast on every token, which at
    /// decode batch sizes costs more than the matmuls themselves).
    /// </summary>
    public LocalBatchForward(GptModel model, Device device, int slots)
    {
        this.model = model;
        this.device = device;
        PrepareForInference(model);
        cache = new SlotKvCache(model.Config.Layers, slots, model.Config.ContextLength);
    }

    public int ContextLength => model.Config.ContextLength;
    public int VocabSize => model.VocabSize;

    public long LengthOf(int slot) => cache.LengthOf(slot);

    public Tensor Forward(int[] slots, long[] tokens, int length, bool fresh)
    {
        if (fresh)
            foreach (int slot in slots) cache.Clear(slot);
        var input = torch.tensor(tokens, device: device).view(slots.Length, length);
        return model.Forward(input, RoutingContext.Inference, null, cache.Rows(slots)).select(1, -1);
    }

    /// <summary>Eval mode, dropless routing, weights in the compute dtype (see the constructor).</summary>
    public static void PrepareForInference(GptModel model)
    {
        model.eval();
        foreach (var layer in model.MoeLayers) layer.Router.NeverDrop = true;
        if (model.ComputeType != ScalarType.Float32) model.to(model.ComputeType);
    }

    public void Dispose() => cache.Dispose();
}
