namespace Orleans.MoE.Client.Cluster;

/// <summary>No cluster answers where the console looked for one (exit code 3).</summary>
public sealed class ClusterUnreachableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The cluster has no job with the id the user gave (exit code 2).</summary>
public sealed class UnknownJobException(string jobId) : Exception($"the cluster has no job '{jobId}' (moe jobs lists them)");
