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
}
