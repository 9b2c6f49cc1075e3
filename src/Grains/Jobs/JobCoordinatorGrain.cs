using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Planning;
using Orleans.MoE.Grains.Resilience;
using Orleans.MoE.Kernels.Config;
using Polly;

namespace Orleans.MoE.Grains.Jobs;

/// <summary>
/// Runs one job as a persisted state machine: Queued → Planning → Running(phase) → Evaluating → Completed | Failed |
/// Cancelled. It asks the cluster for silos, builds the execution plan, prepares the replicas the plan names, then
/// drives steps chunk by chunk (BeginSteps → StepsCompleted), never through one long call.
/// </summary>
public sealed partial class JobCoordinatorGrain(
    [PersistentState("job", StorageNames.Jobs)] IPersistentState<JobCoordinatorState> store,
    ControlPlaneResilience resilience,
    ILogger<JobCoordinatorGrain> log) : Grain, IJobCoordinatorGrain
{
    readonly JobEventLog events = new();
    long chunkStartedAt;

    // When the last chunk's report arrived: the next chunk's wall time counts from there, so the coordinator's own
    // handling between chunks (metrics, events, the next BeginSteps) is counted as orchestration too.
    long? lastChunkArrivedAt;

    JobCoordinatorState S => store.State;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // A coordinator activated again (after a restart) replays its outcome to new watchers from its state.
        if (S.Status != JobStatus.Unknown)
            events.Append(S.Status.IsFinal() ? JobEventKind.Finished : JobEventKind.Status, S.Status, S.Phase, S.LastStep, S.Error, S.SummaryJson);
        return Task.CompletedTask;
    }

    // Chunk reports of the ranks that have finished the current chunk (in memory: a reactivated coordinator asks again).
    readonly Dictionary<int, ChunkResult> arrivals = [];

    public async Task<JobSnapshot> Start(JobSubmission submission)
    {
        if (S.Status != JobStatus.Unknown) return S.Snapshot();
        JobConfig config;
        try
        {
            config = JobConfig.Parse(submission.ConfigJson);
        }
        catch (ConfigException e)
        {
            throw new ArgumentException($"invalid job config: {e.Message}", nameof(submission), e);
        }
        if (submission.Replicas < 1)
            throw new ArgumentException($"replicas is {submission.Replicas}: a job needs at least one silo", nameof(submission));
        S.JobId = this.GetPrimaryKeyString();
        S.Name = config.Name;
        S.Submission = submission;
        S.Phases = JobPhases.For(config, submission.StopAfter).ToList();
        S.TotalSteps = S.Phases[0].UntilStep;
        S.OutputDirectory = submission.OutputDirectory ?? Path.Combine(Path.GetTempPath(), "moe-runs", S.Name, S.JobId);
        S.SubmittedAt = DateTimeOffset.UtcNow;
        await SetStatus(JobStatus.Queued, "waiting for a device");
        // Planning calls the cluster grain, which may be the caller: run it after this call returns.
        _ = TryStartCore();
        return S.Snapshot();
    }

    public Task TryStart() => TryStartCore();

    async Task TryStartCore()
    {
        if (S.Status != JobStatus.Queued || S.CancelRequested) return;
        try
        {
            // A job queued again after losing a silo (policy "wait") waits for as many silos as it had.
            int count = S.Plan?.Members.Count ?? S.Submission!.Replicas;
            var members = await OnCluster((cluster, job) => cluster.AssignSilos(job, count));
            if (members.Count == 0 || S.Status != JobStatus.Queued) return;
            await StartGeneration(members, null);
        }
        catch (Exception e)
        {
            await Fail(e);
        }
    }

    /// <summary>
    /// Makes the next plan generation on <paramref name="members"/>, prepares its ranks from the job's resume point
    /// (the submission's checkpoint, or the one a rescale or rollback chose) and drives it.
    /// </summary>
    /// <param name="handoffFrom">The previous generation, when its ranks parked their runs for this one to take over the data plane.</param>
    async Task StartGeneration(IReadOnlyList<PlanMember> members, string? reason, ExecutionPlan? handoffFrom = null)
    {
        var config = JobConfig.Parse(S.Submission!.ConfigJson);
        S.Plan = ExecutionPlanBuilder.Build((S.Plan?.Generation ?? 0) + 1, members, config);
        var plan = S.Plan;
        preparingGeneration = plan.Generation;
        lostWhilePreparing = null;
        await SetStatus(JobStatus.Planning, $"plan generation {plan.Generation}: {string.Join(", ", plan.Members.Select(m => $"rank {m.Rank} on {m.Silo}"))}{(reason is null ? "" : $" ({reason})")}");
        // NCCL ranks meet through a unique id that rank 0's silo creates; the others get it in their assignment.
        var rankZero = Replica(plan.Member(0));
        byte[]? rendezvous = plan.DataPlane == "nccl"
            ? await resilience.GrainCalls.ExecuteAsync(async _ => await rankZero.CreateDataPlaneId())
            : null;
        // All at once: the ranks of a multi-rank job build their data-plane groups together while preparing.
        var preparing = Task.WhenAll(plan.Members.Select(member =>
        {
            var assignment = new ReplicaAssignment
            {
                JobId = S.JobId,
                Generation = plan.Generation,
                Rank = member.Rank,
                ConfigJson = S.Submission.ConfigJson,
                OutputDirectory = S.OutputDirectory,
                ResumeFrom = handoffFrom is null ? S.ResumeFrom ?? S.Submission.ResumeFrom : null,
                HandoffFrom = handoffFrom,
                StopAfter = S.Submission.StopAfter,
                Device = S.Submission.Device,
                Plan = plan,
                DataPlaneId = rendezvous,
            };
            var replica = Replica(member);
            return resilience.DataPlaneStart.ExecuteAsync(async _ => await replica.Prepare(assignment)).AsTask();
        }));
        ReplicaState[] ready;
        try
        {
            ready = await preparing;
        }
        catch (Exception) when (lostWhilePreparing is { } lost)
        {
            // A member died while the ranks prepared (ClusterChanged aborted the others): roll back and re-plan.
            preparingGeneration = null;
            lostWhilePreparing = null;
            await Recover(lost);
            return;
        }
        catch (Exception e) when (handoffFrom is not null && !S.CancelRequested)
        {
            // The previous runs are gone with the failed handoff: the job rolls back to its last good checkpoint.
            preparingGeneration = null;
            await Recover($"handing generation {handoffFrom.Generation}'s state to generation {plan.Generation} failed: {e.Message}");
            return;
        }
        finally
        {
            if (preparingGeneration == plan.Generation) preparingGeneration = null;
        }
        if (S.CancelRequested) return;
        S.Step = ready[0].Step;
        if (handoffFrom is not null && change is { } c)
            change = c with { HandoffBytes = ready.Sum(r => r.HandoffBytes), HandoffSeconds = ready.Max(r => r.HandoffSeconds) };
        arrivals.Clear();
        S.PhaseIndex = 0;
        drives = true;
        // Recorded (and saved with the status) as soon as the new ranks are ready, before the first chunk.
        RecordGenerationChange();
        await SetStatus(JobStatus.Running, null);
        await Advance();
    }

    /// <summary>Starts the next chunk, the next phase, or the final evaluation, whichever is due.</summary>
    async Task Advance()
    {
        if (S.CancelRequested || S.Status.IsFinal()) return;
        while (S.PhaseIndex < S.Phases.Count)
        {
            var phase = S.Phases[S.PhaseIndex];
            switch (phase.Kind)
            {
                // Distillation phases are training steps too: the engine adds or drops the KD term by step.
                case PhaseKind.Train or PhaseKind.DistilWithKd or PhaseKind.DistilWithoutKd when S.Step < phase.UntilStep:
                    {
                        double mean = S.Losses.Count > 0 && S.DeviceSeconds > 0 ? S.DeviceSeconds / S.Losses.Count : 0;
                        int count = ChunkSizer.Next(S.Submission!.ChunkSteps, mean, phase.UntilStep - S.Step);
                        chunkStartedAt = lastChunkArrivedAt ?? Stopwatch.GetTimestamp();
                        long from = S.Step, generation = S.Plan!.Generation;
                        await OnEveryRank(replica => replica.BeginSteps(generation, from, count));
                        return;
                    }
                case PhaseKind.Evaluate:
                    if (S.Status != JobStatus.Evaluating) await SetStatus(JobStatus.Evaluating, null);
                    {
                        // Every rank evaluates (the experts are spread over them); rank 0 reports the result.
                        long generation = S.Plan!.Generation;
                        await OnEveryRank(replica => replica.BeginEvaluation(generation));
                    }
                    return;
                default:
                    S.PhaseIndex++;
                    if (S.PhaseIndex < S.Phases.Count) events.Append(JobEventKind.Status, S.Status, S.Phase, message: $"phase {S.Phases[S.PhaseIndex].Kind}");
                    break;
            }
        }
    }

    public async Task StepsCompleted(ChunkResult result)
    {
        // Idempotent: a chunk from another generation, or one already counted, changes nothing; nor does one that
        // ends while the job rolls back (the ranks of the generation being abandoned fail as they are aborted).
        if (S.Plan is null || result.Generation != S.Plan.Generation || result.FromStep != S.Step || S.Status.IsFinal() && !S.CancelRequested || recovering) return;
        if (result.Error is { } error)
        {
            // A rank that failed because a member silo is gone is recovered from; any other failure fails the job.
            if (await LostMembers() is { Length: > 0 } lost) await Recover($"lost silo {string.Join(", ", lost)}");
            else await Fail(new InvalidOperationException(S.Plan.Members.Count > 1 ? $"rank {result.Rank}: {error}" : error));
            return;
        }
        // The ranks of a chunk run in lockstep (their collectives wait for each other); the chunk is done when
        // all have reported. Their step reports agree on everything but the silo and its seconds.
        if (!arrivals.TryAdd(result.Rank, result) || arrivals.Count < S.Plan.Members.Count) return;
        var reports = arrivals.Values.OrderBy(r => r.Rank).ToArray();
        arrivals.Clear();
        foreach (var other in reports.Skip(1))
            foreach (var step in other.Steps)
            {
                S.StepSecondsBySilo[step.Silo] = S.StepSecondsBySilo.GetValueOrDefault(step.Silo) + step.Seconds;
                S.StepsBySilo[step.Silo] = S.StepsBySilo.GetValueOrDefault(step.Silo) + 1;
            }
        result = reports[0];
        long arrived = Stopwatch.GetTimestamp();
        S.ChunkWallSeconds += Stopwatch.GetElapsedTime(chunkStartedAt, arrived).TotalSeconds;
        lastChunkArrivedAt = arrived;
        S.DeviceSeconds += result.DeviceSeconds;
        foreach (var step in result.Steps)
        {
            S.Losses.Add(step.Loss);
            S.StepSecondsBySilo[step.Silo] = S.StepSecondsBySilo.GetValueOrDefault(step.Silo) + step.Seconds;
            S.StepsBySilo[step.Silo] = S.StepsBySilo.GetValueOrDefault(step.Silo) + 1;
            if (step.Checkpoint is { } c) S.Checkpoints.Add(c);
            S.Step = step.Step;
            S.LastStep = step;
            events.Append(JobEventKind.Step, S.Status, S.Phase, step);
        }
        drives = true;
        try
        {
            // A checkpoint asked for, or a rescale due, happens here, between chunks; it starts the next chunk itself.
            if (await AtChunkBoundary())
            {
                await Save();
                return;
            }
            // Ask for the next chunk before persisting, so the device is not idle while the state is written.
            await Advance();
            await Save();
        }
        catch (Exception e)
        {
            await Fail(e);
        }
    }

    public async Task EvaluationCompleted(long generation, string? summaryJson, string? checkpoint, string? error)
    {
        if (S.Plan is null || generation != S.Plan.Generation || S.Status != JobStatus.Evaluating) return;
        if (error is not null)
        {
            await Fail(new InvalidOperationException(error));
            return;
        }
        if (checkpoint is not null) S.Checkpoints.Add(checkpoint);
        S.SummaryJson = summaryJson;
        S.PhaseIndex = S.Phases.Count;
        await Finish(JobStatus.Completed, null);
    }

    public async Task<JobSnapshot> Cancel()
    {
        if (S.Status.IsFinal() || S.Status == JobStatus.Unknown) return S.Snapshot();
        S.CancelRequested = true;
        if (S.Plan is not null && S.Status is JobStatus.Running or JobStatus.Evaluating or JobStatus.Planning)
        {
            long generation = S.Plan.Generation;
            // Stop is idempotent: a retry after a lost reply finds the session closed and returns null. With several
            // ranks every one takes part in the checkpoint (each holds some experts), so they stop together.
            var written = await OnEveryRank(replica => replica.Stop(generation, checkpoint: true));
            if (written[0] is { } checkpoint) S.Checkpoints.Add(checkpoint);
        }
        await Finish(JobStatus.Cancelled, "cancelled");
        return S.Snapshot();
    }

    public Task<JobSnapshot> GetState() => Task.FromResult(S.Snapshot());

    public async IAsyncEnumerable<JobEvent> Watch(long afterSequence, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        long after = afterSequence;
        while (true)
        {
            var (batch, next) = events.Since(after);
            foreach (var e in batch)
            {
                yield return e;
                after = e.Sequence;
            }
            if (events.HasFinished && after >= events.LastSequence) yield break;
            await next.WaitAsync(cancellation);
        }
    }

    async Task Finish(JobStatus status, string? message)
    {
        S.FinishedAt = DateTimeOffset.UtcNow;
        await SetStatus(status, message);
        AnswerCheckpointRequest();
        events.Append(JobEventKind.Finished, status, null, S.LastStep, S.Error ?? message, S.SummaryJson);
        if (status == JobStatus.Completed && S.Plan is { } plan)
            await OnEveryRank(replica => replica.Stop(plan.Generation, checkpoint: false));
        await OnCluster(async (cluster, job) =>
        {
            await cluster.ReleaseSilos(job);
            return true;
        });
    }

    async Task Fail(Exception e)
    {
        if (S.Status.IsFinal()) return;
        LogJobFailed(log, e, S.JobId);
        S.Error = e is ArgumentException or InvalidOperationException or NotSupportedException ? e.Message : $"{e.GetType().Name}: {e.Message}";
        try
        {
            if (S.Plan is { } plan)
                await Task.WhenAll(plan.Members.Select(member => Replica(member).Stop(plan.Generation, checkpoint: false)));
        }
        catch (Exception stopFailure)
        {
            LogJobFailed(log, stopFailure, S.JobId);
        }
        await Finish(JobStatus.Failed, S.Error);
    }

    async Task SetStatus(JobStatus status, string? message)
    {
        S.Status = status;
        events.Append(JobEventKind.Status, status, S.Phase, message: message);
        await Save();
    }

    Task Save() => resilience.Storage.ExecuteAsync(async _ => await store.WriteStateAsync()).AsTask();

    IClusterGrain Cluster => GrainFactory.GetGrain<IClusterGrain>(IClusterGrain.Key);

    /// <summary>
    /// Calls every rank of the current plan at once through the retrying pipeline. The grain references are taken
    /// here, on the activation's thread: a Polly retry may continue elsewhere, where GrainFactory is unavailable.
    /// </summary>
    Task<T[]> OnEveryRank<T>(Func<IReplicaGrain, Task<T>> call) =>
        Task.WhenAll(S.Plan!.Members.Select(Replica).ToArray().Select(replica => resilience.GrainCalls.ExecuteAsync(async _ => await call(replica)).AsTask()));

    Task OnEveryRank(Func<IReplicaGrain, Task> call) =>
        Task.WhenAll(S.Plan!.Members.Select(Replica).ToArray().Select(replica => resilience.GrainCalls.ExecuteAsync(async _ => await call(replica)).AsTask()));

    IReplicaGrain Replica(PlanMember member) => GrainFactory.GetGrain<IReplicaGrain>(PlanKey.Replica(S.JobId, S.Plan!.Generation, member.Rank, member.Silo));

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed")]
    static partial void LogJobFailed(ILogger logger, Exception exception, string jobId);
}
