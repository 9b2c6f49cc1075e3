using Orleans.MoE.Kernels.Comm;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Moves one MoE layer's expert state (the six <see cref="ExpertStacks"/>) between the ranks of a communicator when
/// the layout changes: every rank that will hold an expert it did not hold gets it point to point from a rank that
/// held it; a rank that keeps an expert copies it on its device. All ranks walk (expert, receiver) in the same order,
/// so blocking sends and receives pair up without deadlock; with several previous holders (expert-data-parallel
/// copies) the senders are spread over them.
/// </summary>
static class ExpertMoves
{
    /// <param name="before">Per rank of <paramref name="world"/>: the experts it held (null: none).</param>
    /// <param name="after">Per rank: the experts it will hold (null: none).</param>
    /// <param name="held">This rank's previous stacks, [its previous experts, …] (null when it held none).</param>
    /// <param name="into">This rank's next stacks, [its next experts, …] (null when it will hold none).</param>
    /// <returns>Bytes this rank received.</returns>
    public static long Move(ICommunicator world, int experts, Func<int, ExpertShard?> before, Func<int, ExpertShard?> after, Tensor[]? held, Tensor[]? into)
    {
        long received = 0;
        int rank = world.Rank;
        var heldShard = before(rank);
        var intoShard = after(rank);
        for (int expert = 0; expert < experts; expert++)
        {
            var holders = Enumerable.Range(0, world.Size).Where(r => Holds(before(r), expert)).ToArray();
            if (holders.Length == 0) throw new InvalidOperationException($"no rank holds expert {expert} of {experts}");
            for (int receiver = 0; receiver < world.Size; receiver++)
            {
                if (!Holds(after(receiver), expert)) continue;
                if (Holds(before(receiver), expert))
                {
                    if (receiver == rank)
                        for (int i = 0; i < into!.Length; i++) into[i][expert - intoShard!.Value.First].copy_(held![i][expert - heldShard!.Value.First]);
                    continue;
                }
                int sender = holders[receiver % holders.Length];
                if (rank == sender)
                    foreach (var stack in held!) world.Send(stack[expert - heldShard!.Value.First], receiver);
                else if (rank == receiver)
                    foreach (var stack in into!)
                    {
                        var row = stack[expert - intoShard!.Value.First];
                        world.Receive(row, sender);
                        received += row.NumberOfElements * row.ElementSize;
                    }
            }
        }
        return received;
    }

    static bool Holds(ExpertShard? shard, int expert) => shard is { } s && expert >= s.First && expert < s.First + s.Count;
}
