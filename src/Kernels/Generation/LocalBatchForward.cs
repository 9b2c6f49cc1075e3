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
    readonly FixedShapeDecoder? decoder;

    /// <summary>Over <paramref name="model"/>, made an inference model (<see cref="GptModel.PrepareForInference"/>).</summary>
    /// <param name="mode">How decode steps run; null: CUDA graphs on a GPU, eager on a CPU.</param>
    public LocalBatchForward(GptModel model, Device device, int slots, DecodeMode? mode = null)
    {
        this.model = model;
        this.device = device;
        model.PrepareForInference();
        cache = new SlotKvCache(model.Config.Layers, slots, model.Config.ContextLength);
        Mode = mode ?? (device.type == DeviceType.CUDA ? DecodeMode.Graphs : DecodeMode.Eager);
        if (Mode != DecodeMode.Eager) decoder = new FixedShapeDecoder(model, cache, device, Mode == DecodeMode.Graphs);
    }

    public DecodeMode Mode { get; }

    /// <summary>The fixed-shape decoder (null in eager mode): whether it replays graphs, and why not.</summary>
    public FixedShapeDecoder? Decoder => decoder;

    public int ContextLength => model.Config.ContextLength;
    public int VocabSize => model.VocabSize;

    public long LengthOf(int slot) => cache.LengthOf(slot);

    public Tensor Forward(int[] slots, long[] tokens, int length, bool fresh)
    {
        if (!fresh && length == 1 && decoder is not null) return decoder.Decode(slots, tokens);
        if (fresh)
            foreach (int slot in slots) cache.Clear(slot);
        var input = torch.tensor(tokens, device: device).view(slots.Length, length);
        return model.Forward(input, RoutingContext.Inference, null, cache.Rows(slots)).select(1, -1);
    }

    public void Dispose()
    {
        decoder?.Dispose();
        cache.Dispose();
    }
}
