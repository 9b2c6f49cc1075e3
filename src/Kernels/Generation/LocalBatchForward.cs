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

    /// <summary>Over <paramref name="model"/>, made an inference model (<see cref="GptModel.PrepareForInference"/>).</summary>
    public LocalBatchForward(GptModel model, Device device, int slots)
    {
        this.model = model;
        this.device = device;
        model.PrepareForInference();
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

    public void Dispose() => cache.Dispose();
}
