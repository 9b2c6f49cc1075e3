using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// One job (key: job id): a persisted state machine that plans the job, drives its steps in chunks through short
/// calls, runs its phases in order, keeps its metrics and checkpoints, and streams progress to watchers.
/// </summary>
public interface IJobCoordinatorGrain : IGrainWithStringKey
{
    /// <summary>Accepts the job (idempotent: a second call returns the state) and starts planning it.</summary>
    Task<JobSnapshot> Start(JobSubmission submission);

    /// <summary>Stops the job after the step in progress and writes a checkpoint (idempotent).</summary>
    Task<JobSnapshot> Cancel();

    /// <summary>Tries again to get silos for a queued job (the cluster calls it when silos free up).</summary>
    Task TryStart();

    [AlwaysInterleave]
    Task<JobSnapshot> GetState();

    /// <summary>Every event after <paramref name="afterSequence"/>, then new ones as they happen, until the job ends.</summary>
    [AlwaysInterleave]
    IAsyncEnumerable<JobEvent> Watch(long afterSequence, CancellationToken cancellation = default);

    /// <summary>A replica's chunk finished (idempotent by generation and first step).</summary>
    Task StepsCompleted(ChunkResult result);

    /// <summary>
    /// The cluster changed (a silo joined, left or is draining): the coordinator looks at its silos and, per its
    /// scaling policy, rolls back and re-plans at once (a member is gone) or re-plans at the next chunk boundary.
    /// Returns at once (the reaction runs in a turn of its own), so the cluster grain can retry a lost call.
    /// Interleaves: while a generation's ranks prepare (a long turn), a member lost meanwhile must abort the others.
    /// </summary>
    [AlwaysInterleave]
    Task ClusterChanged();

    /// <summary>Writes a checkpoint at the next chunk boundary (every rank together) and returns its path.</summary>
    [AlwaysInterleave]
    Task<string> Checkpoint();

    /// <summary>A replica's final evaluation finished (idempotent by generation).</summary>
    Task EvaluationCompleted(long generation, string? summaryJson, string? checkpoint, string? error);
}
