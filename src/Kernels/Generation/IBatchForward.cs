using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// What the generation engine runs the model through: new tokens of some KV-cache slots in, each slot's logits at its
/// last new token out. One process (<see cref="LocalBatchForward"/>) or a replica of several ranks in lockstep.
/// </summary>
public interface IBatchForward : IDisposable
{
    int ContextLength { get; }
    int VocabSize { get; }

    /// <summary>Positions a slot holds.</summary>
    long LengthOf(int slot);

    /// <summary>
    /// Tokens [slots.Length × length] (row-major) appended to their slots (emptied first when <paramref name="fresh"/>)
    /// → logits [slots.Length, V] in fp32, each row at its slot's last new token.
    /// </summary>
    Tensor Forward(int[] slots, long[] tokens, int length, bool fresh);
}
