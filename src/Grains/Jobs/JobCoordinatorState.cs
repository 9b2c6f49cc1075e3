using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Jobs;

/// <summary>What a job coordinator persists: the state machine, the plan, per-step metrics and checkpoints.</summary>
[GenerateSerializer]
public sealed class JobCoordinatorState
{
    [Id(0)] public string JobId { get; set; } = "";
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public JobStatus Status { get; set; }
    [Id(3)] public JobSubmission? Submission { get; set; }
    [Id(4)] public List<JobPhase> Phases { get; set; } = [];
    [Id(5)] public int PhaseIndex { get; set; }
    [Id(6)] public ExecutionPlan? Plan { get; set; }
    [Id(7)] public long Step { get; set; }
    [Id(8)] public long TotalSteps { get; set; }
    [Id(9)] public List<double> Losses { get; set; } = [];
    [Id(10)] public StepReport? LastStep { get; set; }
    [Id(11)] public List<string> Checkpoints { get; set; } = [];
    [Id(12)] public string? Error { get; set; }
    [Id(13)] public DateTimeOffset SubmittedAt { get; set; }
    [Id(14)] public DateTimeOffset? FinishedAt { get; set; }
    [Id(15)] public string? SummaryJson { get; set; }
    [Id(16)] public double DeviceSeconds { get; set; }
    [Id(17)] public double ChunkWallSeconds { get; set; }
    [Id(18)] public Dictionary<string, double> StepSecondsBySilo { get; set; } = [];
    [Id(19)] public Dictionary<string, long> StepsBySilo { get; set; } = [];
    [Id(20)] public string OutputDirectory { get; set; } = "";
    [Id(21)] public bool CancelRequested { get; set; }

    /// <summary>The checkpoint the next plan generation starts from (set by a rescale or a rollback).</summary>
    [Id(22)] public string? ResumeFrom { get; set; }

    [Id(23)] public List<GenerationChange> GenerationChanges { get; set; } = [];
    [Id(24)] public List<string> Notices { get; set; } = [];

    public PhaseKind? Phase => Status is JobStatus.Running or JobStatus.Evaluating && PhaseIndex < Phases.Count ? Phases[PhaseIndex].Kind : null;

    public JobSnapshot Snapshot() => new()
    {
        JobId = JobId,
        Name = Name,
        Status = Status,
        Phase = Phase,
        Step = Step,
        TotalSteps = TotalSteps,
        Plan = Plan,
        Checkpoints = Checkpoints.ToArray(),
        Error = Error,
        SubmittedAt = SubmittedAt,
        FinishedAt = FinishedAt,
        Losses = Losses.ToArray(),
        LastStep = LastStep,
        Phases = Phases.ToArray(),
        SummaryJson = SummaryJson,
        DeviceSeconds = DeviceSeconds,
        ChunkWallSeconds = ChunkWallSeconds,
        StepSecondsBySilo = StepSecondsBySilo.ToDictionary(p => p.Key, p => p.Value / Math.Max(1, StepsBySilo.GetValueOrDefault(p.Key))),
        GenerationChanges = GenerationChanges.ToArray(),
        Notices = Notices.ToArray(),
    };
}
