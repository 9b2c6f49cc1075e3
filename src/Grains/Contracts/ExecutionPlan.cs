namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// The one object both planes agree on: which silo is which rank, the process groups, and which rank owns each
/// expert of every MoE layer. A new generation is made whenever the members change; grains that stand for
/// compute carry the generation and the silo in their keys, so placement follows the plan.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ExecutionPlan
{
    [Id(0)] public required long Generation { get; init; }
    [Id(1)] public required IReadOnlyList<PlanMember> Members { get; init; }

    /// <summary>Data-parallel groups (ranks that hold the same weights and average gradients).</summary>
    [Id(2)] public required IReadOnlyList<int[]> DataParallelGroups { get; init; }

    /// <summary>Expert-parallel groups per distinct expert count (pyramid layers with 4 and 8 experts get different groups).</summary>
    [Id(3)] public required IReadOnlyList<ExpertParallelGroup> ExpertParallelGroups { get; init; }

    /// <summary>Expert → the first rank that holds it, for every MoE layer (its replicas sit at the same position of the other groups).</summary>
    [Id(4)] public required IReadOnlyList<LayerExperts> Layers { get; init; }

    /// <summary>How the ranks exchange tensors: "none" (one rank), "shared-memory" (one process), "nccl" or "mpi".</summary>
    [Id(5)] public string DataPlane { get; init; } = "none";

    /// <summary>The job's parallel layout as the data plane builds it (expert-parallel limit, node size, hierarchy).</summary>
    [Id(6)] public int MaxExpertParallel { get; init; } = 1;
    [Id(7)] public int NodeSize { get; init; } = 1;
    [Id(8)] public bool HierarchicalAllToAll { get; init; }

    /// <summary>The member with this rank.</summary>
    public PlanMember Member(int rank) => Members.Single(m => m.Rank == rank);
}

/// <summary>A silo in a plan: its rank, the node it runs on, its device, its process (host:pid) and its MPI rank (−1: none).</summary>
[GenerateSerializer, Immutable]
public sealed record PlanMember(
    [property: Id(0)] string Silo, [property: Id(1)] int Rank, [property: Id(2)] string Node, [property: Id(3)] string Device,
    [property: Id(4)] string Process, [property: Id(5)] int MpiRank = -1);

/// <summary>One group of ranks that exchange tokens for layers with <see cref="ExpertCount"/> experts (a count has W / size of them).</summary>
[GenerateSerializer, Immutable]
public sealed record ExpertParallelGroup([property: Id(0)] int ExpertCount, [property: Id(1)] int[] Ranks);

/// <summary>One MoE layer: its expert count and, for expert e, the rank that owns it.</summary>
[GenerateSerializer, Immutable]
public sealed record LayerExperts([property: Id(0)] int Layer, [property: Id(1)] int ExpertCount, [property: Id(2)] int[] ExpertRank)
{
    /// <summary>Contiguous ranges of experts owned by one rank: the unit an ExpertShardGrain stands for.</summary>
    public IEnumerable<(int Rank, int First, int Last)> Shards()
    {
        int start = 0;
        for (int e = 1; e <= ExpertRank.Length; e++)
        {
            if (e == ExpertRank.Length || ExpertRank[e] != ExpertRank[start])
            {
                yield return (ExpertRank[start], start, e - 1);
                start = e;
            }
        }
    }
}
