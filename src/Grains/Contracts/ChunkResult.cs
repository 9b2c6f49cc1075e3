namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a replica reports when a chunk of steps it was asked for has run on its device.</summary>
[GenerateSerializer, Immutable]
public sealed record ChunkResult
{
    [Id(0)] public required long Generation { get; init; }

    /// <summary>The step the chunk started after (the coordinator's idempotency key with the generation).</summary>
    [Id(1)] public required long FromStep { get; init; }

    [Id(2)] public required IReadOnlyList<StepReport> Steps { get; init; }

    /// <summary>Seconds the device executor spent on the chunk (queueing excluded).</summary>
    [Id(3)] public required double DeviceSeconds { get; init; }

    /// <summary>Set when the chunk failed on the device; the job fails with this message.</summary>
    [Id(4)] public string? Error { get; init; }

    /// <summary>The reporting replica's rank (a chunk is complete when every rank of the plan has reported).</summary>
    [Id(5)] public int Rank { get; init; }
}
