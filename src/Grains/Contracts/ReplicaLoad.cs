namespace Orleans.MoE.Grains.Contracts;

/// <summary>A serving replica's load: requests decoding, waiting for a slot, and its limits.</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicaLoad
{
    [Id(0)] public required string Silo { get; init; }
    [Id(1)] public int Running { get; init; }
    [Id(2)] public int Waiting { get; init; }
    [Id(3)] public int MaxBatch { get; init; }
    [Id(4)] public int QueueLimit { get; init; }

    /// <summary>Tokens generated since the replica loaded.</summary>
    [Id(5)] public long Tokens { get; init; }

    /// <summary>The most requests ever waiting at once with no free slot for them (never above QueueLimit).</summary>
    [Id(6)] public int MostQueued { get; init; }

    /// <summary>Requests answered busy.</summary>
    [Id(7)] public long Refused { get; init; }

    /// <summary>Requests dropped because their caller went away.</summary>
    [Id(8)] public long Cancelled { get; init; }
}
