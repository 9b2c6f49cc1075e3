namespace Orleans.MoE.Grains.Contracts;

/// <summary>A job as its coordinator sees it now (side-effect free to read; the dashboard calls it).</summary>
[GenerateSerializer, Immutable]
public sealed record JobSnapshot
{
    [Id(0)] public required string JobId { get; init; }
    [Id(1)] public required string Name { get; init; }
    [Id(2)] public required JobStatus Status { get; init; }
    [Id(3)] public PhaseKind? Phase { get; init; }
    [Id(4)] public required long Step { get; init; }
    [Id(5)] public required long TotalSteps { get; init; }
    [Id(6)] public ExecutionPlan? Plan { get; init; }
    [Id(7)] public required IReadOnlyList<string> Checkpoints { get; init; }
    [Id(8)] public string? Error { get; init; }
    [Id(9)] public required DateTimeOffset SubmittedAt { get; init; }
    [Id(10)] public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>Training loss of every step run so far, in order.</summary>
    [Id(11)] public required IReadOnlyList<double> Losses { get; init; }

    /// <summary>The last step's full report (expert loads per layer, drops, tokens/s).</summary>
    [Id(12)] public StepReport? LastStep { get; init; }

    [Id(13)] public required IReadOnlyList<JobPhase> Phases { get; init; }
    [Id(14)] public string? SummaryJson { get; init; }

    /// <summary>Step seconds on the device, summed over the run (for the overhead fraction).</summary>
    [Id(15)] public required double DeviceSeconds { get; init; }

    /// <summary>Wall seconds from asking for chunks to hearing they finished, summed: device time plus orchestration.</summary>
    [Id(16)] public required double ChunkWallSeconds { get; init; }

    /// <summary>Mean step seconds per silo (the MoE view's "step time per silo").</summary>
    [Id(17)] public required IReadOnlyDictionary<string, double> StepSecondsBySilo { get; init; }

    /// <summary>Every re-plan after the first plan (growth, drain, loss with rollback), in order.</summary>
    [Id(18)] public IReadOnlyList<GenerationChange> GenerationChanges { get; init; } = [];

    /// <summary>What the job noticed about its checkpoints and silos (a damaged checkpoint skipped, a lost silo), in order.</summary>
    [Id(19)] public IReadOnlyList<string> Notices { get; init; } = [];

    /// <summary>Orchestration overhead as a fraction of step time: (chunk wall time − device time) / device time.</summary>
    public double OverheadFraction => DeviceSeconds > 0 ? Math.Max(0, ChunkWallSeconds - DeviceSeconds) / DeviceSeconds : 0;
}
