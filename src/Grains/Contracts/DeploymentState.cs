namespace Orleans.MoE.Grains.Contracts;

/// <summary>A deployment as clients see it: its spec, where its replicas run and how loaded they are.</summary>
[GenerateSerializer, Immutable]
public sealed record DeploymentState
{
    [Id(0)] public required DeploymentSpec Spec { get; init; }
    [Id(1)] public required DeploymentStatus Status { get; init; }

    /// <summary>Replica grain keys (plan keys naming their silos), in replica order.</summary>
    [Id(2)] public IReadOnlyList<string> Replicas { get; init; } = [];
    /// <summary>The load of each replica that answered (by silo).</summary>
    [Id(3)] public IReadOnlyList<ReplicaLoad> Loads { get; init; } = [];
    [Id(4)] public string? Error { get; init; }

    /// <summary>The model's context length (prompt plus completion), once loaded.</summary>
    [Id(5)] public int ContextLength { get; init; }
    [Id(6)] public DateTimeOffset Created { get; init; }

    /// <summary>Every silo the deployment holds (ready, loading, or waiting for enough silos to form a replica).</summary>
    [Id(7)] public IReadOnlyList<string> Silos { get; init; } = [];
}

/// <summary>Where a deployment is in its life.</summary>
public enum DeploymentStatus
{
    Unknown,
    Loading,
    Ready,
    Failed,
    Stopped,
}
