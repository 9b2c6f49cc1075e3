using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Client.Cluster;

/// <summary>Turns a job's step reports back into the engine's progress records, so the console shows them as before.</summary>
public static class JobProgress
{
    public static TrainingProgress ToTrainingProgress(StepReport s) => new(
        new StepMetrics
        {
            Step = s.Step,
            Loss = s.Loss,
            AuxLoss = s.AuxLoss,
            ZLoss = s.ZLoss,
            LearningRate = s.LearningRate,
            GradNorm = s.GradNorm,
            Tokens = s.Tokens,
            Seconds = s.Seconds,
            CommunicationSeconds = s.CommunicationSeconds,
            ExpertLoads = s.Layers.Select(l => new ExpertLoad(l.Layer, l.Load, l.Kept, l.Capacity)).ToArray(),
        },
        s.TotalSteps,
        TimeSpan.FromSeconds(s.EtaSeconds),
        s.Validation is { } v ? new EvaluationResult(v.Loss, v.Tokens, v.BitsPerByte) : null,
        s.Checkpoint);

    /// <summary>Follows a job to its end, handing each event to <paramref name="onEvent"/>; returns the job's final state.</summary>
    public static async Task<JobSnapshot> Follow(IJobCoordinatorGrain job, Action<JobEvent> onEvent, CancellationToken cancellation)
    {
        await foreach (var e in job.Watch(0, cancellation).WithCancellation(cancellation))
        {
            onEvent(e);
            if (e.Kind == JobEventKind.Finished) break;
        }
        return await job.GetState();
    }

    /// <summary>Exit code for a job's outcome: 0 completed, 130 cancelled, 1 failed.</summary>
    public static int ExitCode(JobStatus status) => status switch
    {
        JobStatus.Completed => 0,
        JobStatus.Cancelled => 130,
        _ => 1,
    };
}
