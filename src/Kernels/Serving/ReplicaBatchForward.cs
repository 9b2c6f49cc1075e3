using Orleans.MoE.Kernels.Generation;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>The leader's side of a replica as the generation engine sees it; disposing it stops the followers.</summary>
public sealed class ReplicaBatchForward(ReplicaRank leader) : IBatchForward
{
    public int ContextLength => leader.ContextLength;
    public int VocabSize => leader.VocabSize;

    public long LengthOf(int slot) => leader.LengthOf(slot);

    public Tensor Forward(int[] slots, long[] tokens, int length, bool fresh) => leader.Lead(slots, tokens, length, fresh);

    public void Dispose()
    {
        leader.StopFollowers();
        leader.Dispose();
    }
}
