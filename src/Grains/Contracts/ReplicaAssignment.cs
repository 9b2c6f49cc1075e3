namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a replica needs to set up its part of a job on its device: the plan's rank and the run's settings.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaAssignment
{
    [Id(0)] public required string JobId { get; init; }
    [Id(1)] public required long Generation { get; init; }
    [Id(2)] public required int Rank { get; init; }
    [Id(3)] public required string ConfigJson { get; init; }
    [Id(4)] public required string OutputDirectory { get; init; }
    [Id(5)] public string? ResumeFrom { get; init; }
    [Id(6)] public long? StopAfter { get; init; }
    [Id(7)] public string? Device { get; init; }

    /// <summary>The plan this replica belongs to: its data plane and groups, and the expert shards it reports loads to.</summary>
    [Id(8)] public required ExecutionPlan Plan { get; init; }

    /// <summary>The data plane's rendezvous for this generation (NCCL: rank 0's unique id); null when none is needed.</summary>
    [Id(9)] public byte[]? DataPlaneId { get; init; }

    /// <summary>
    /// The previous generation's plan when this one takes its state over the data plane (the job grew): every
    /// previous member is a member of this plan and keeps its run parked for it. Null: start from
    /// <see cref="ResumeFrom"/> (or from scratch).
    /// </summary>
    [Id(10)] public ExecutionPlan? HandoffFrom { get; init; }

    /// <summary>The session key on the silo's device: one training session per (job, generation, rank).</summary>
    public string SessionKey => $"{JobId}/g{Generation}/r{Rank}";
}

/// <summary>What a replica knows about the session on its device.</summary>
/// <remarks>The handoff figures are those of the previous generation's state this rank received over the data plane (0 without one).</remarks>
[GenerateSerializer, Immutable]
public sealed record ReplicaState(
    [property: Id(0)] string Silo,
    [property: Id(1)] long Generation,
    [property: Id(2)] long Step,
    [property: Id(3)] bool Running,
    [property: Id(4)] string? Device,
    [property: Id(5)] long Parameters,
    [property: Id(6)] long HandoffBytes = 0,
    [property: Id(7)] double HandoffSeconds = 0);

/// <summary>Load statistics an expert shard has accumulated.</summary>
[GenerateSerializer, Immutable]
public sealed record ExpertShardState([property: Id(0)] int Layer, [property: Id(1)] int FirstExpert, [property: Id(2)] long[] Load, [property: Id(3)] long[] Kept, [property: Id(4)] long LastStep, [property: Id(5)] string Silo);
