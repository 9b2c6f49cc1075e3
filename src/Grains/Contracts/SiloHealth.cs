namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a silo says about itself and its device in each heartbeat.</summary>
[GenerateSerializer, Immutable]
public sealed record SiloHealth
{
    [Id(0)] public required string Silo { get; init; }
    [Id(1)] public required string Address { get; init; }
    [Id(2)] public required string Node { get; init; }
    [Id(3)] public required string Device { get; init; }

    /// <summary>Memory the device has (GPU memory, or the machine's RAM for a CPU device).</summary>
    [Id(4)] public required long DeviceMemoryBytes { get; init; }

    /// <summary>Resident memory of the silo process.</summary>
    [Id(5)] public required long ProcessMemoryBytes { get; init; }

    /// <summary>Fraction of wall time the device executor was busy since the last heartbeat.</summary>
    [Id(6)] public required double Utilisation { get; init; }

    [Id(7)] public required int QueuedWork { get; init; }
    [Id(8)] public required DateTimeOffset At { get; init; }

    /// <summary>The dashboard address of this silo, when it serves one.</summary>
    [Id(9)] public string? DashboardUrl { get; init; }
}

/// <summary>A silo as the cluster grain reports it: its last heartbeat and what it is running.</summary>
[GenerateSerializer, Immutable]
public sealed record SiloStatusReport
{
    [Id(0)] public required SiloHealth Health { get; init; }

    /// <summary>Seconds since the last heartbeat.</summary>
    [Id(1)] public required double HeartbeatAgeSeconds { get; init; }

    [Id(2)] public required bool Active { get; init; }
    [Id(3)] public string? RunningJob { get; init; }

    /// <summary>Grain activations on the silo, by grain type.</summary>
    [Id(4)] public required IReadOnlyDictionary<string, int> Grains { get; init; }

    /// <summary>Drained (moe drain): no job is given this silo, and the jobs on it re-plan without it.</summary>
    [Id(5)] public bool Draining { get; init; }
}

/// <summary>A job as the cluster's list shows it.</summary>
[GenerateSerializer, Immutable]
public sealed record JobListing([property: Id(0)] string JobId, [property: Id(1)] string Name, [property: Id(2)] DateTimeOffset SubmittedAt);
