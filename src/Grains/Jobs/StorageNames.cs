namespace Orleans.MoE.Grains.Jobs;

/// <summary>Names of the grain storage providers the grains use (memory when embedded, PostgreSQL in a cluster).</summary>
public static class StorageNames
{
    /// <summary>Job records: coordinator state and the cluster's job list.</summary>
    public const string Jobs = "moe";
}
