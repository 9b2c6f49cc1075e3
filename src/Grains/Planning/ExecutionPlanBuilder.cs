using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Grains.Planning;

/// <summary>
/// Builds a job's execution plan from its members and config. Today every member is a full data-parallel replica
/// (the expert-parallel group of each expert count is the largest set of ranks that divides it evenly), which is
/// the layout a single-replica job degenerates to: one rank owning every expert.
/// </summary>
public static class ExecutionPlanBuilder
{
    public static ExecutionPlan Build(long generation, IReadOnlyList<PlanMember> members, JobConfig config)
    {
        if (members.Count == 0) throw new ArgumentException("a plan needs at least one member", nameof(members));
        var ranked = members.Select((m, i) => m with { Rank = i }).ToArray();
        int[] allRanks = ranked.Select(m => m.Rank).ToArray();
        var moeLayers = config.Moe.Layers.Resolve(config.Model.Layers);
        var counts = config.Moe.Experts.ForLayers(moeLayers.Count);
        var groups = counts.Distinct().Order().Select(c => new ExpertParallelGroup(c, allRanks.Take(ExpertParallelSize(c, allRanks.Length)).ToArray())).ToArray();
        var layers = moeLayers.Select((layer, i) =>
        {
            int experts = counts[i];
            int ep = ExpertParallelSize(experts, allRanks.Length);
            // Contiguous blocks: expert e lives on rank e / (E / ep), so each rank's experts are one shard.
            int perRank = experts / ep;
            return new LayerExperts(layer, experts, Enumerable.Range(0, experts).Select(e => e / perRank).ToArray());
        }).ToArray();
        return new ExecutionPlan
        {
            Generation = generation,
            Members = ranked,
            DataParallelGroups = [allRanks],
            ExpertParallelGroups = groups,
            Layers = layers,
        };
    }

    /// <summary>The largest rank count not above <paramref name="ranks"/> that divides <paramref name="experts"/>.</summary>
    static int ExpertParallelSize(int experts, int ranks)
    {
        for (int size = Math.Min(experts, ranks); size > 1; size--)
            if (experts % size == 0) return size;
        return 1;
    }
}
