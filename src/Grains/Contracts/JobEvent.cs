namespace Orleans.MoE.Grains.Contracts;

/// <summary>What kind of thing a <see cref="JobEvent"/> says happened.</summary>
[GenerateSerializer]
public enum JobEventKind
{
    /// <summary>The job's status or phase changed.</summary>
    Status = 0,

    /// <summary>An optimiser step finished (carries its <see cref="StepReport"/>).</summary>
    Step = 1,

    /// <summary>The final evaluation ran and the job is over (carries the summary).</summary>
    Finished = 2,
}

/// <summary>One item of a job's progress stream, in order; <see cref="Sequence"/> lets a watcher resume.</summary>
[GenerateSerializer, Immutable]
public sealed record JobEvent
{
    [Id(0)] public required long Sequence { get; init; }
    [Id(1)] public required JobEventKind Kind { get; init; }
    [Id(2)] public required JobStatus Status { get; init; }
    [Id(3)] public PhaseKind? Phase { get; init; }
    [Id(4)] public StepReport? Step { get; init; }
    [Id(5)] public string? Message { get; init; }

    /// <summary>The final summary as the console prints it (snake_case JSON of TrainingSummary); only on Finished.</summary>
    [Id(6)] public string? SummaryJson { get; init; }
}
