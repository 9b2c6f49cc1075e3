using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Cluster;

/// <summary>What the cluster grain persists: every job submitted, the queue, and which silos each running job and deployment holds.</summary>
[GenerateSerializer]
public sealed class ClusterState
{
    [Id(0)] public List<JobListing> Jobs { get; set; } = [];
    [Id(1)] public List<string> Queue { get; set; } = [];
    [Id(2)] public Dictionary<string, List<string>> SilosByJob { get; set; } = [];

    /// <summary>Silos drained by an operator (moe drain): never assigned again while they live.</summary>
    [Id(3)] public List<string> Drained { get; set; } = [];

    /// <summary>The silos each serving deployment holds (by model name).</summary>
    [Id(4)] public Dictionary<string, List<string>> SilosByDeployment { get; set; } = [];
}
