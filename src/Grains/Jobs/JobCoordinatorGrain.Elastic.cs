using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Planning;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Polly;

namespace Orleans.MoE.Grains.Jobs;

/// <summary>
/// Elasticity and fault tolerance of a running job. A silo that joins (policy "grow") or is drained makes the job
/// re-plan at the next chunk boundary: every rank writes one checkpoint together and stops, and the next generation
/// prepares from it (a checkpoint loads into any rank layout, so expert shards move through the filesystem). A
/// silo that is lost makes the job abort the generation's data plane at once, roll back to its newest checkpoint
/// that verifies, forget the losses recorded after it, and re-plan on the silos left (or wait for a replacement);
/// also while the generation's ranks are still preparing.
/// </summary>
public sealed partial class JobCoordinatorGrain
{
    // In memory on purpose: a re-activated coordinator re-decides on the next ClusterChanged.
    string? rescaleReason;
    PendingChange? change;
    bool recovering;
    TaskCompletionSource<string>? checkpointRequest;

    // Whether this activation has driven the current generation (started it or heard a chunk of it end). A
    // coordinator re-activated after its silo died may have missed the report of the chunk in flight.
    bool drives;

    public Task ClusterChanged()
    {
        // The reaction waits for the turn in progress; a generation that is preparing cannot wait: its ranks would
        // block on a lost member until the data-plane start timeout (minutes).
        if (preparingGeneration is { } generation) _ = AbortPreparationIfLost(generation);
        // Coalesced: changes that arrive while a reaction is pending are seen by it (it reads the view afresh).
        reaction ??= this.RegisterGrainTimer(ReactToClusterChange, TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        return Task.CompletedTask;
    }

    // The generation whose ranks are preparing (StartGeneration), and why it was abandoned while they did.
    long? preparingGeneration;
    string? lostWhilePreparing;

    /// <summary>
    /// Runs beside StartGeneration's wait for the ranks: when a member of the preparing generation is gone, the
    /// others' data plane is aborted so their Prepare throws at once, and StartGeneration recovers instead of failing.
    /// </summary>
    async Task AbortPreparationIfLost(long generation)
    {
        try
        {
            var plan = S.Plan;
            if (plan is null || plan.Generation != generation) return;
            var lost = await LostMembers();
            if (lost.Length == 0 || preparingGeneration != generation || lostWhilePreparing is not null) return;
            string reason = $"lost silo {string.Join(", ", lost)} while generation {generation} prepared";
            lostWhilePreparing = reason;
            // Again every second until the preparation ends: a rank whose Prepare had not reached its data plane yet
            // is only aborted once it has.
            while (preparingGeneration == generation)
            {
                await Task.WhenAll(plan.Members.Where(m => !lost.Contains(m.Silo))
                    .Select(m => Quietly(Replica(m).Abort(generation, $"generation {generation} of job {S.JobId} is abandoned: {reason}"))));
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogClusterViewFailed(log, e, S.JobId);
        }
    }

    IGrainTimer? reaction;

    async Task ReactToClusterChange()
    {
        reaction?.Dispose();
        reaction = null;
        if (S.Status == JobStatus.Queued)
        {
            await TryStartCore();
            return;
        }
        if (S.Status == JobStatus.Planning && S.Plan is { } planned && preparingGeneration is null && !recovering && !S.CancelRequested)
        {
            // Planning, yet this activation prepares nothing: the one that did died with its silo mid-preparation.
            await Recover($"the coordinator was re-activated while generation {planned.Generation} prepared");
            return;
        }
        if (S.Status is not (JobStatus.Running or JobStatus.Evaluating) || S.Plan is null || S.CancelRequested || recovering) return;
        try
        {
            if (await LostMembers() is { Length: > 0 } lost)
            {
                await Recover($"lost silo {string.Join(", ", lost)}");
                return;
            }
            if (!drives && !(await Task.WhenAll(S.Plan.Members.Select(m => Replica(m).GetState()))).Any(r => r.Running))
            {
                await Recover("the coordinator was re-activated while no rank was running: a chunk report may have been lost");
                return;
            }
            if (S.Status != JobStatus.Running) return;
            var view = await OnCluster((cluster, job) => cluster.ViewFor(job));
            var config = JobConfig.Parse(S.Submission!.ConfigJson);
            int ranks = S.Plan.Members.Count;
            if (view.Draining.Count > 0)
                RequestRescale($"silo {string.Join(", ", view.Draining)} is draining");
            else if (S.Submission.Scaling.OnJoin == GrowthPolicy.Grow && ElasticWorld.Largest(config, Math.Min(ranks + view.Free, MaxRanks)) > ranks)
                RequestRescale($"{view.Free} free silo(s) to grow onto");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Asked again shortly, not only at the next membership change or chunk error: when every rank died with a
            // lost silo, neither may ever come.
            LogClusterViewFailed(log, e, S.JobId);
            reaction ??= this.RegisterGrainTimer(ReactToClusterChange, ReactionRetry, Timeout.InfiniteTimeSpan);
        }
    }

    static readonly TimeSpan ReactionRetry = TimeSpan.FromSeconds(2);

    public Task<string> Checkpoint()
    {
        if (S.Status != JobStatus.Running || S.CancelRequested)
            throw new InvalidOperationException($"job {S.JobId} is {S.Status.ToString().ToLowerInvariant()}: only a running job takes a checkpoint at a chunk boundary");
        checkpointRequest ??= new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        return checkpointRequest.Task;
    }

    int MaxRanks => S.Submission!.Scaling.MaxReplicas > 0 ? S.Submission.Scaling.MaxReplicas : int.MaxValue;

    void RequestRescale(string reason)
    {
        if (rescaleReason is not null) return;
        rescaleReason = reason;
        change = new PendingChange(reason, Stopwatch.GetTimestamp(), S.Plan!.Members.Count, 0, null);
        Notice($"{reason}: re-planning at the next chunk boundary");
    }

    /// <summary>Plan members that are no longer active in the cluster (empty when all live).</summary>
    async Task<string[]> LostMembers()
    {
        var view = await OnCluster((cluster, job) => cluster.ViewFor(job));
        return S.Plan!.Members.Select(m => m.Silo).Except(view.Alive).ToArray();
    }

    bool TrainingStepsLeft => S.Phases.Any(p => p.Kind != PhaseKind.Evaluate && S.Step < p.UntilStep);

    /// <summary>Between two chunks: writes a checkpoint asked for, re-plans when due; true when it started the next chunk itself.</summary>
    async Task<bool> AtChunkBoundary()
    {
        if (checkpointRequest is not null && TrainingStepsLeft)
        {
            long generation = S.Plan!.Generation;
            var written = await OnEveryRank(replica => replica.Checkpoint(generation));
            S.Checkpoints.Add(written[0]);
            Notice($"checkpoint at step {S.Step} (asked for): {written[0]}");
            AnswerCheckpointRequest();
        }
        if (rescaleReason is not { } reason || !TrainingStepsLeft) return false;
        rescaleReason = null;
        await Rescale(reason);
        return true;
    }

    /// <summary>
    /// Graceful re-plan at a chunk boundary. When the data plane allows, the ranks park their runs and the next
    /// generation takes the state from them: over its own data plane when the job grows (every rank stays), staged
    /// over the current one first when it shrinks (every next rank is a current one; the leaving ranks send their
    /// experts before they go). Otherwise every rank writes one checkpoint together and stops, and the next
    /// generation starts from it.
    /// </summary>
    async Task Rescale(string reason)
    {
        var old = S.Plan!;
        long generation = old.Generation;
        var members = await ChooseMembers(S.Submission!.Scaling.OnJoin == GrowthPolicy.Grow ? MaxRanks : old.Members.Count);
        change ??= new PendingChange(reason, Stopwatch.GetTimestamp(), old.Members.Count, 0, null);
        if (HandoffFor(old, members) is { } handoff)
        {
            await OnEveryRank(replica => replica.Park(generation, handoff.Shrinks ? handoff.Next : null));
            change = change.Value with { OverDataPlane = true };
            await StartGeneration(members, reason, handoffFrom: old);
            return;
        }
        var written = await OnEveryRank(replica => replica.Stop(generation, checkpoint: true));
        S.ResumeFrom = written[0] ?? throw new InvalidOperationException($"rank 0 of generation {generation} wrote no checkpoint");
        S.Checkpoints.Add(S.ResumeFrom);
        change = change.Value with { Checkpoint = S.ResumeFrom };
        if (members.Count == 0)
        {
            await WaitForSilos($"{reason}: no silo left to run on");
            return;
        }
        await StartGeneration(members, reason);
    }

    /// <summary>
    /// How the next generation on <paramref name="members"/> can take the state without a checkpoint, or null: the
    /// policy asks for it, neither plan runs over MPI (its world is fixed at launch), and either every current rank
    /// stays (it grows: the next world carries the state) or every next rank is a current one (it shrinks: the
    /// current world stages it). With silos both leaving and joining, the ranks that hold an expert may share no world.
    /// </summary>
    (ExecutionPlan Next, bool Shrinks)? HandoffFor(ExecutionPlan old, IReadOnlyList<PlanMember> members)
    {
        if (S.Submission!.Scaling.Handoff != HandoffPolicy.DataPlane || members.Count == 0 || old.DataPlane == "mpi") return null;
        bool grows = members.Count > 1 && old.Members.All(m => members.Any(n => n.Silo == m.Silo));
        bool shrinks = old.Members.Count > 1 && members.Count < old.Members.Count && members.All(m => old.Members.Any(o => o.Silo == m.Silo));
        if (!grows && !shrinks) return null;
        // Built again, the same way, by StartGeneration: the plan only depends on the generation, members and config.
        var next = ExecutionPlanBuilder.Build(old.Generation + 1, members, JobConfig.Parse(S.Submission.ConfigJson));
        return next.DataPlane == "mpi" ? null : (next, !grows);
    }

    /// <summary>
    /// A member is gone: abort the generation's data plane on the survivors (their ranks throw at once instead of
    /// waiting for the barrier timeout), stop them, roll back to the newest checkpoint that verifies and is not past
    /// the recorded steps, forget what was recorded after it, and re-plan per the loss policy.
    /// </summary>
    async Task Recover(string reason)
    {
        recovering = true;
        var old = S.Plan!;
        long generation = old.Generation;
        var pending = new PendingChange(reason, Stopwatch.GetTimestamp(), old.Members.Count, 0, null);
        change = pending;
        rescaleReason = null;
        try
        {
            Notice($"{reason}: generation {generation} is abandoned at step {S.Step}; rolling back to the last good checkpoint");
            LogRecovering(log, S.JobId, generation, reason);
            var view = await OnCluster((cluster, job) => cluster.ViewFor(job));
            var survivors = old.Members.Where(m => view.Alive.Contains(m.Silo)).ToArray();
            await Task.WhenAll(survivors.Select(m => Quietly(Replica(m).Abort(generation, $"generation {generation} of job {S.JobId} is abandoned: {reason}"))));
            await Task.WhenAll(survivors.Select(m => Quietly(Replica(m).Stop(generation, checkpoint: false))));

            string directory = Path.Combine(S.OutputDirectory, "checkpoints");
            long recorded = S.Step;
            var rollback = await Task.Run(() => RollbackPoint.Find(directory, recorded));
            foreach (var skipped in rollback.Skipped) Notice(skipped);
            // Checkpoints from before this job's first step (an earlier run in the same folder) are not its own: with
            // none newer, the job starts again where it started.
            long first = S.Step - S.Losses.Count;
            bool own = rollback.Step >= first;
            long to = own ? rollback.Step!.Value : first;
            // Steps after the checkpoint run again on the next generation: their first record is forgotten, so
            // the losses hold every step exactly once.
            S.Losses.RemoveRange((int)(to - first), (int)(S.Step - to));
            S.Checkpoints.RemoveAll(c => CheckpointDirectory.StepOf(c) > to);
            S.ResumeFrom = own ? rollback.Path : S.Submission!.ResumeFrom;
            S.Step = to;
            Notice($"rolled back from step {recorded} to step {to} ({S.ResumeFrom ?? "the job's start"})");
            change = pending with { StepsRolledBack = recorded - to, Checkpoint = S.ResumeFrom };

            var members = await ChooseMembers(old.Members.Count);
            recovering = false;
            if (members.Count == 0 || S.Submission!.Scaling.OnLoss == LossPolicy.Wait && members.Count < old.Members.Count)
            {
                await WaitForSilos($"{reason}: waiting for {old.Members.Count} silos");
                return;
            }
            await StartGeneration(members, reason);
        }
        catch (Exception e)
        {
            recovering = false;
            await Fail(e);
        }
    }

    /// <summary>As many silos as wanted and free, trimmed to a world size the job can use (the global batch is kept).</summary>
    async Task<IReadOnlyList<PlanMember>> ChooseMembers(int wanted)
    {
        var config = JobConfig.Parse(S.Submission!.ConfigJson);
        var members = await OnCluster((cluster, job) => cluster.ResizeSilos(job, wanted));
        int usable = ElasticWorld.Largest(config, members.Count);
        return usable == members.Count ? members : await OnCluster((cluster, job) => cluster.ResizeSilos(job, usable));
    }

    /// <summary>Gives the silos back and queues the job; it starts again from its resume point when enough are free.</summary>
    async Task WaitForSilos(string message)
    {
        await OnCluster(async (cluster, job) =>
        {
            await cluster.ReleaseSilos(job);
            return true;
        });
        await SetStatus(JobStatus.Queued, message);
        _ = TryStartCore();
    }

    /// <summary>Once the new generation's ranks are prepared (stepping starts next): how long the change took, kept with the job.</summary>
    void RecordGenerationChange()
    {
        if (change is not { } c || S.Plan is not { } plan) return;
        change = null;
        double seconds = Stopwatch.GetElapsedTime(c.NoticedAt).TotalSeconds;
        S.GenerationChanges.Add(new GenerationChange(plan.Generation, c.FromRanks, plan.Members.Count, c.Reason, S.Step, c.StepsRolledBack, seconds, c.Checkpoint,
            c.OverDataPlane, c.HandoffBytes, c.HandoffSeconds));
        Notice($"generation {plan.Generation}: {c.FromRanks} → {plan.Members.Count} ranks, stepping from step {S.Step} {seconds:F2} s after {c.Reason}" +
               (c.OverDataPlane ? $" (state over the data plane: {c.HandoffBytes / 1048576.0:F1} MiB in {c.HandoffSeconds:F2} s)" : "") +
               (c.StepsRolledBack > 0 ? $" ({c.StepsRolledBack} steps to run again)" : ""));
        LogGenerationChange(log, S.JobId, plan.Generation, c.FromRanks, plan.Members.Count, seconds, c.StepsRolledBack, c.Reason);
    }

    void AnswerCheckpointRequest()
    {
        if (checkpointRequest is not { } request) return;
        checkpointRequest = null;
        if (S.Checkpoints.LastOrDefault() is { } last) request.TrySetResult(last);
        else request.TrySetException(new InvalidOperationException($"job {S.JobId} ended {S.Status.ToString().ToLowerInvariant()} without a checkpoint"));
    }

    /// <summary>A message kept with the job (its snapshot's notices) and sent to watchers.</summary>
    void Notice(string message)
    {
        S.Notices.Add(message);
        events.Append(JobEventKind.Status, S.Status, S.Phase, message: message);
    }

    /// <summary>
    /// A retried call to the cluster grain. The reference is taken here, on the activation's thread: Polly may run a
    /// retry on another thread, where a grain must not touch its activation's services.
    /// </summary>
    async Task<T> OnCluster<T>(Func<IClusterGrain, string, Task<T>> call)
    {
        var cluster = Cluster;
        string job = S.JobId;
        return await resilience.GrainCalls.ExecuteAsync(async _ => await call(cluster, job));
    }

    /// <summary>A call to a survivor during recovery: best effort, bounded, so one unresponsive silo cannot stall the rollback.</summary>
    async Task Quietly(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogRecoveryCallFailed(log, e, S.JobId);
        }
    }

    readonly record struct PendingChange(string Reason, long NoticedAt, int FromRanks, long StepsRolledBack, string? Checkpoint,
        bool OverDataPlane = false, long HandoffBytes = 0, double HandoffSeconds = 0);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} could not read its view of the cluster")]
    static partial void LogClusterViewFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} abandons plan generation {Generation}: {Reason}")]
    static partial void LogRecovering(ILogger logger, string jobId, long generation, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: a call to a survivor failed during recovery")]
    static partial void LogRecoveryCallFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} generation {Generation}: {From} → {To} ranks stepping after {Seconds:F2} s ({RolledBack} steps rolled back; {Reason})")]
    static partial void LogGenerationChange(ILogger logger, string jobId, long generation, int from, int to, double seconds, long rolledBack, string reason);
}
