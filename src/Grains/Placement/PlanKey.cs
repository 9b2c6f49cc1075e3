namespace Orleans.MoE.Grains.Placement;

/// <summary>
/// Keys of grains that stand for compute. They end in "@silo", the plan member that must host them, so that the
/// placement director can pin them without asking anyone, and a new plan generation gives new grains.
/// </summary>
public static class PlanKey
{
    public static string Replica(string jobId, long generation, int rank, string silo) => $"{jobId}/g{generation}/r{rank}@{silo}";

    public static string ExpertShard(string jobId, long generation, int layer, int firstExpert, int lastExpert, string silo) =>
        $"{jobId}/g{generation}/l{layer}/e{firstExpert}-{lastExpert}@{silo}";

    /// <summary>A serving replica (one a silo): deployments are not jobs, so their keys start with "serve/" and the model name.</summary>
    public static string ServingReplica(string deployment, string silo) => $"serve/{deployment}@{silo}";

    /// <summary>The silo a plan key names, or null when the key names none.</summary>
    public static string? SiloOf(string key)
    {
        int at = key.LastIndexOf('@');
        return at < 0 || at == key.Length - 1 ? null : key[(at + 1)..];
    }

    /// <summary>The job id a plan key starts with.</summary>
    public static string JobOf(string key) => key[..key.IndexOf('/', StringComparison.Ordinal)];
}
