using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Which rank holds what, as pure arithmetic shared by the engine and the control plane's execution plan.
/// Every rank is a data-parallel replica of the dense weights. A layer with E experts is split over
/// expert-parallel groups of consecutive ranks (expert e on group rank e / (E / ep)); the ranks at the same
/// position of every group hold the same experts and form that layer's expert-data-parallel group.
/// </summary>
public sealed record ParallelLayout(int WorldSize, int MaxExpertParallel, int NodeSize, bool Hierarchical)
{
    public static ParallelLayout Single { get; } = new(1, 1, 1, false);

    public static ParallelLayout For(ParallelConfig config, int worldSize, int reportedNodeSize = 0)
    {
        int node = config.NodeSize > 0 ? config.NodeSize : reportedNodeSize > 0 ? reportedNodeSize : worldSize;
        if (worldSize % node != 0)
            throw new ConfigException("parallel.node_size", $"{node} ranks per node do not divide the {worldSize} ranks");
        int ep = config.ExpertParallel > 0 ? config.ExpertParallel : worldSize;
        if (config.ExpertParallel > worldSize)
            throw new ConfigException("parallel.expert_parallel", $"{config.ExpertParallel} is more than the {worldSize} ranks");
        return new ParallelLayout(worldSize, ep, node, config.HierarchicalAllToAll);
    }

    /// <summary>Expert-parallel size of a layer: the largest size ≤ the limit that divides both E and the world.</summary>
    public int ExpertParallelSize(int experts)
    {
        for (int size = Math.Min(Math.Min(experts, MaxExpertParallel), WorldSize); size > 1; size--)
            if (experts % size == 0 && WorldSize % size == 0) return size;
        return 1;
    }

    /// <summary>The experts of a layer that <paramref name="rank"/> holds.</summary>
    public ExpertShard ShardOf(int rank, int experts)
    {
        int ep = ExpertParallelSize(experts), perRank = experts / ep;
        return new ExpertShard(rank % ep * perRank, perRank, experts);
    }

    /// <summary>The rank of the first expert-parallel group that holds <paramref name="expert"/> (its replicas sit at the same position of the other groups).</summary>
    public int FirstHolder(int experts, int expert) => expert / ShardOf(0, experts).Count;

    /// <summary>
    /// Whether tokens of an expert-parallel group of this size cross nodes in two steps: only when the group spans
    /// several nodes (inside one node the flat exchange is the same traffic without the two layout transforms).
    /// </summary>
    public bool UsesHierarchy(int expertParallelSize) =>
        Hierarchical && expertParallelSize > NodeSize && expertParallelSize % NodeSize == 0;
}
