using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// The training sessions on this silo's device: one <see cref="TrainingRun"/> per (job, generation, rank), created,
/// stepped, checkpointed and disposed only on the <see cref="DeviceExecutor"/>'s thread. A rank of a multi-rank
/// job also holds its data-plane groups, built when the session opens (all ranks open together).
/// </summary>
public sealed class TrainingSessions(DeviceExecutor executor, SiloIdentity silo, string cacheDirectory) : ITrainingDevice, IDisposable
{
    /// <summary>The options every --json result is printed with (the console prints a summary exactly so).</summary>
    public static readonly JsonSerializerOptions SummaryJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    readonly ConcurrentDictionary<string, TrainingRun> runs = new();
    readonly ConcurrentDictionary<string, RankGroups> groups = new();
    readonly ConcurrentDictionary<string, ReplicaAssignment> assignments = new();

    // NCCL communicators this silo created for a session: aborted when the job loses a peer, destroyed on close
    // (an MPI world or a shared-memory group belongs to the process or the rendezvous, not to a session).
    readonly ConcurrentDictionary<string, NcclCommunicator> ncclWorlds = new();

    public Task<byte[]> CreateNcclIdAsync() => executor.RunAsync(() => NcclUniqueId.Create().ToBytes());

    // Runs of a job's previous generation, parked until the next generation's session on this silo takes them over.
    readonly ConcurrentDictionary<string, ParkedRun> parked = new();

    // What the handoff into a session moved (bytes received, seconds), for its SessionInfo.
    readonly ConcurrentDictionary<string, (long Bytes, double Seconds)> handoffs = new();

    public async Task<SessionInfo> OpenAsync(ReplicaAssignment assignment, CancellationToken cancellation)
    {
        var run = runs.TryGetValue(assignment.SessionKey, out var open) ? open : await executor.RunAsync(() =>
        {
            var config = JobConfig.Parse(assignment.ConfigJson);
            string device = assignment.Device ?? (silo.Device == "auto" ? config.Device : silo.Device);
            // Taken before anything can fail: whatever happens, this open is the parked run's last user.
            var previous = TakeParked(assignment);
            try
            {
                var ranks = JoinDataPlane(assignment, config, device);
                if (ranks is not null) groups[assignment.SessionKey] = ranks;
                var handoff = assignment.HandoffFrom is { } from ? HandoffFor(assignment, from, previous) : null;
                var created = TrainingRun.Create(config, new TrainingRunOptions
                {
                    OutputDirectory = assignment.OutputDirectory,
                    CacheDirectory = cacheDirectory,
                    ResumeFrom = assignment.ResumeFrom,
                    StopAfter = assignment.StopAfter,
                    Device = device,
                    Handoff = handoff,
                }, ranks);
                if (handoff is not null) handoffs[assignment.SessionKey] = (handoff.BytesReceived, handoff.Seconds);
                return created;
            }
            catch
            {
                // A failed open (an aborted group, say) leaves no session for a Stop to close: drop its groups here.
                if (groups.TryRemove(assignment.SessionKey, out var joined)) joined.Dispose();
                if (ncclWorlds.TryRemove(assignment.SessionKey, out var nccl)) nccl.Dispose();
                throw;
            }
            finally
            {
                previous?.Dispose();
            }
        }, cancellation);
        if (!runs.TryAdd(assignment.SessionKey, run) && !ReferenceEquals(runs[assignment.SessionKey], run))
            await executor.RunAsync(run.Dispose, CancellationToken.None);
        run = runs[assignment.SessionKey];
        assignments[assignment.SessionKey] = assignment;
        var moved = handoffs.GetValueOrDefault(assignment.SessionKey);
        return new SessionInfo(run.Trainer.Step, run.LastStep, run.Device.ToString(), run.Parameters.Total, moved.Bytes, moved.Seconds);
    }

    /// <summary>
    /// This silo's parked run of the job, when the assignment hands off from it; any other parked run of the job is
    /// stale (a handoff that was abandoned) and is disposed. Runs on the executor.
    /// </summary>
    ParkedRun? TakeParked(ReplicaAssignment assignment)
    {
        if (!parked.TryRemove(assignment.JobId, out var previous)) return null;
        if (assignment.HandoffFrom is { } from && previous.Generation == from.Generation) return previous;
        previous.Dispose();
        return null;
    }

    /// <summary>
    /// The handoff of this rank: the state staged for it when the job shrank; else (it grew) which previous rank each
    /// next rank was (by silo), with this silo's parked run if it was one.
    /// </summary>
    IRunHandoff HandoffFor(ReplicaAssignment assignment, ExecutionPlan from, ParkedRun? previous)
    {
        if (previous?.Staged is { } staged) return staged;
        var previousRankOf = RanksIn(assignment.Plan, from);
        int was = previousRankOf[assignment.Rank];
        if (was >= 0 && previous is null)
            throw new InvalidOperationException($"silo {silo.Name} was rank {was} of generation {from.Generation} of job {assignment.JobId} but has no run of it parked to hand off");
        return new GenerationHandoff(was >= 0 ? previous!.Run : null, LayoutOf(from), previousRankOf);
    }

    public Task ParkAsync(string sessionKey, ExecutionPlan? next)
    {
        if (!assignments.TryRemove(sessionKey, out var assignment) || !runs.TryRemove(sessionKey, out var run))
            throw new InvalidOperationException($"no training session {sessionKey} on silo {silo.Name} to park");
        return executor.RunAsync(() =>
        {
            groups.TryRemove(sessionKey, out var ranks);
            ncclWorlds.TryRemove(sessionKey, out var nccl);
            handoffs.TryRemove(sessionKey, out _);
            if (parked.TryRemove(assignment.JobId, out var older)) older.Dispose();
            try
            {
                // A shrinking job stages the next plan's experts while every previous rank is still in the group.
                var staged = next is null ? null : Stage(assignment, run, ranks, next);
                if (next is not null && staged is null) run.Dispose(); // this silo leaves the job
                else parked[assignment.JobId] = new ParkedRun(assignment.Generation, run, staged);
            }
            catch
            {
                run.Dispose();
                throw;
            }
            finally
            {
                // The previous generation's groups end here; its model and optimiser wait for the next generation.
                ranks?.Dispose();
                nccl?.Dispose();
            }
        });
    }

    static StagedHandoff? Stage(ReplicaAssignment assignment, TrainingRun run, RankGroups? ranks, ExecutionPlan next)
    {
        if (ranks is null) throw new InvalidOperationException($"session {assignment.SessionKey} is one rank: there is no job to shrink");
        return StagedHandoff.Stage(run, ranks, LayoutOf(next), RanksIn(assignment.Plan, next));
    }

    /// <summary>For each rank of <paramref name="plan"/>, the rank its silo has in <paramref name="other"/>, or −1.</summary>
    static int[] RanksIn(ExecutionPlan plan, ExecutionPlan other) =>
        Enumerable.Range(0, plan.Members.Count).Select(rank => other.Members.FirstOrDefault(m => m.Silo == plan.Member(rank).Silo)?.Rank ?? -1).ToArray();

    /// <summary>Which rank of a plan holds which experts (the engine's arithmetic for the plan's groups).</summary>
    static ParallelLayout LayoutOf(ExecutionPlan plan) => new(plan.Members.Count, plan.MaxExpertParallel, plan.NodeSize, plan.HierarchicalAllToAll);

    /// <summary>A job's run of a previous generation (and, when it shrank, the state staged for the next), on this device.</summary>
    sealed record ParkedRun(long Generation, TrainingRun Run, StagedHandoff? Staged = null) : IDisposable
    {
        public void Dispose()
        {
            Staged?.Dispose();
            Run.Dispose();
        }
    }

    public Task<ChunkRun> RunStepsAsync(string sessionKey, int count, CancellationToken cancellation)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(() =>
        {
            long start = Stopwatch.GetTimestamp();
            // Ranks of one job must run the same steps, so they stop at chunk boundaries, never inside a chunk.
            var steps = run.RunSteps(count, run.Ranks is null ? cancellation : CancellationToken.None).Select(p => StepReports.From(p, silo.Name)).ToArray();
            return new ChunkRun(steps, Stopwatch.GetElapsedTime(start).TotalSeconds);
        });
    }

    public Task<SessionSummary> FinishAsync(string sessionKey)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(() =>
        {
            var summary = run.Finish();
            return new SessionSummary(JsonSerializer.Serialize(summary, SummaryJson), summary.Checkpoint!);
        });
    }

    public Task<string> CheckpointAsync(string sessionKey)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(run.SaveCheckpoint);
    }

    public void AbortDataPlane(ReplicaAssignment assignment, string reason)
    {
        // Shared-memory groups and NCCL communicators can be aborted from outside their ranks' threads; MPI ranks
        // blocked on a lost peer wait until their processes are killed (MPI_Abort ends the whole launch).
        if (assignment.Plan.DataPlane == "shared-memory")
            SharedMemoryRendezvous.Abort(DataPlaneKey(assignment), new CommunicatorAbortedException(reason));
        else if (ncclWorlds.TryGetValue(assignment.SessionKey, out var nccl))
            nccl.Abort(new CommunicatorAbortedException(reason));
    }

    public Task CloseAsync(string sessionKey)
    {
        assignments.TryRemove(sessionKey, out _);
        handoffs.TryRemove(sessionKey, out _);
        // A job whose session closes without parking (it stopped, or rolled back after a failed handoff) will not
        // take a parked run over: drop it with the session.
        string job = sessionKey[..sessionKey.LastIndexOf("/g", StringComparison.Ordinal)];
        parked.TryRemove(job, out var stale);
        runs.TryRemove(sessionKey, out var run);
        return run is null && stale is null
            ? Task.CompletedTask
            : executor.RunAsync(() =>
            {
                stale?.Dispose();
                run?.Dispose();
                if (groups.TryRemove(sessionKey, out var ranks)) ranks.Dispose();
                if (ncclWorlds.TryRemove(sessionKey, out var nccl)) nccl.Dispose();
            });
    }

    /// <summary>This rank's groups for a multi-rank plan (collective with the other ranks), or null for one rank.</summary>
    RankGroups? JoinDataPlane(ReplicaAssignment assignment, JobConfig config, string device)
    {
        var plan = assignment.Plan;
        if (plan.Members.Count == 1) return null;
        int deviceIndex = TorchRuntime.ResolveDevice(device).index is var i and >= 0 ? i : 0;
        var world = DataPlaneWorld.Join(plan.DataPlane, DataPlaneKey(assignment), plan.Members.Count, assignment.Rank, assignment.DataPlaneId, deviceIndex);
        if (world is NcclCommunicator nccl) ncclWorlds[assignment.SessionKey] = nccl;
        return RankGroups.ForJob(world, config, LayoutOf(plan));
    }

    /// <summary>One group per job and plan generation: a new generation (new members) never meets an old one's ranks.</summary>
    static string DataPlaneKey(ReplicaAssignment assignment) => $"{assignment.JobId}/g{assignment.Generation}";

    /// <summary>Sessions open on this device.</summary>
    public int Count => runs.Count;

    TrainingRun Get(string sessionKey) =>
        runs.TryGetValue(sessionKey, out var run) ? run : throw new InvalidOperationException($"no training session {sessionKey} on silo {silo.Name}");

    public void Dispose()
    {
        // A silo that goes away mid-chunk leaves its ranks in collectives with the other silos' ranks: abort them
        // first, so that neither this executor (closing the sessions) nor the peers wait for the barrier timeout.
        foreach (var assignment in assignments.Values) AbortDataPlane(assignment, $"silo {silo.Name} is shutting down");
        foreach (var key in runs.Keys) CloseAsync(key).Wait(TimeSpan.FromSeconds(30));
        foreach (var job in parked.Keys)
            if (parked.TryRemove(job, out var idle)) executor.RunAsync(idle.Dispose).Wait(TimeSpan.FromSeconds(30));
    }

    /// <summary>The data cache a silo uses: MOE_CACHE, else the repository's .cache, else ~/.cache/orleans-moe.</summary>
    public static string DefaultCache() => CacheDirectory.Default();
}
