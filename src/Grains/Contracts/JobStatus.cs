namespace Orleans.MoE.Grains.Contracts;

/// <summary>Where a job is in its life: Queued → Planning → Running(phase) → Evaluating → Completed | Failed | Cancelled.</summary>
[GenerateSerializer]
public enum JobStatus
{
    /// <summary>The coordinator has no record of this job id.</summary>
    Unknown = 0,
    Queued = 1,
    Planning = 2,
    Running = 3,
    Evaluating = 4,
    Completed = 5,
    Failed = 6,
    Cancelled = 7,
}

/// <summary>Which statuses are final.</summary>
public static class JobStatusExtensions
{
    public static bool IsFinal(this JobStatus status) => status is JobStatus.Completed or JobStatus.Failed or JobStatus.Cancelled;
}
