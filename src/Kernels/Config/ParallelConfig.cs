namespace Orleans.MoE.Kernels.Config;

/// <summary>
/// How a job spreads over ranks. The number of ranks comes from where it runs (silos, threads, mpiexec); this
/// says how they are used: dense weights are replicated on every rank (data parallelism), each MoE layer's
/// experts are split over an expert-parallel group and replicated over expert-data-parallel groups.
/// </summary>
public sealed record ParallelConfig
{
    /// <summary>Largest expert-parallel group (0 = as many ranks as the expert count and the world allow).</summary>
    public int ExpertParallel { get; init; }

    /// <summary>Exchange tokens with the two-step all-to-all of DeepSpeed-MoE §5.3 (intra-node, then inter-node).</summary>
    public bool HierarchicalAllToAll { get; init; }

    /// <summary>Ranks per node for the hierarchical all-to-all (0 = what the ranks report; one node when nobody says).</summary>
    public int NodeSize { get; init; }

    /// <summary>Measure the time in communication (synchronises around every collective: slower, for measuring only).</summary>
    public bool ProfileCommunication { get; init; }
}
