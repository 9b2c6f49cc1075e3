using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Serving;

/// <summary>What a deployment grain persists: enough to load its replicas again after it moves.</summary>
[GenerateSerializer]
public sealed class DeploymentRecord
{
    [Id(0)] public DeploymentSpec? Spec { get; set; }
    [Id(1)] public List<PlanMember> Members { get; set; } = [];
    [Id(2)] public DateTimeOffset Created { get; set; }
    [Id(3)] public bool Stopped { get; set; }

    /// <summary>The silos of each replica in rank order (one each unless the spec slices the model).</summary>
    [Id(4)] public List<List<string>> Replicas { get; set; } = [];

    /// <summary>Replica formations so far: each new one gets its own data-plane rendezvous.</summary>
    [Id(5)] public long Formations { get; set; }
}
