using Orleans.MoE.Kernels.Checkpoints;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// The weights of a checkpoint, read as they are asked for: the dense file once, each expert's file only when a rank
/// holds (a slice of) that expert, so no rank reads the others' experts.
/// </summary>
public sealed class CheckpointWeights(ModelCheckpoint checkpoint) : IFullWeights, IDisposable
{
    SafeTensorsContent? dense;

    public Tensor Dense(string name)
    {
        dense ??= checkpoint.ReadDense();
        return dense.Tensors.TryGetValue(name, out var t) ? t
            : throw new CorruptCheckpointException(checkpoint.Path, ModelCheckpoint.DenseFile, $"has no tensor '{name}'");
    }

    /// <summary>The expert's tensors belong to the caller's dispose scope (its file's moments are freed at once).</summary>
    public (Tensor W1, Tensor W2) Expert(int layer, int expert)
    {
        using var content = checkpoint.ReadExpert(layer, expert);
        Tensor Take(string name) => content.Tensors.Remove(name, out var t) ? t
            : throw new CorruptCheckpointException(checkpoint.Path, ModelCheckpoint.ExpertFile(layer, expert), $"has no tensor '{name}'");
        return (Take("w1"), Take("w2"));
    }

    public void Dispose() => dense?.Dispose();
}
