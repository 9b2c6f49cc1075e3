using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Distillation;

/// <summary>
/// A frozen teacher model for distillation. Counts its forward passes (so tests and metrics can show it is not run
/// after the KD stop step) and can release its weights from device memory once KD is over.
/// </summary>
public sealed class Teacher : IDisposable
{
    GptModel? model;

    public Teacher(ModelCheckpoint checkpoint, Device device)
    {
        Checkpoint = checkpoint;
        model = checkpoint.LoadModel(device);
        foreach (var p in model.parameters()) p.requires_grad = false;
    }

    public ModelCheckpoint Checkpoint { get; }

    /// <summary>The teacher's model while it is held (null once released).</summary>
    public GptModel? Model => model;

    /// <summary>Forward passes run so far.</summary>
    public long Forwards { get; private set; }

    public bool Released => model is null;

    /// <summary>Teacher logits [B, T, V] for a batch of tokens, without autograd.</summary>
    public Tensor Forward(Tensor tokens)
    {
        if (model is null) throw new InvalidOperationException("the teacher was released after the KD stop step");
        Forwards++;
        using var noGrad = torch.no_grad();
        return model.Forward(tokens, RoutingContext.Inference, null, null);
    }

    /// <summary>Frees the teacher's weights (after the KD stop step the teacher is never run again).</summary>
    public void Release()
    {
        model?.Dispose();
        model = null;
    }

    public void Dispose() => Release();
}
