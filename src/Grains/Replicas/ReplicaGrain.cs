using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Resilience;
using Orleans.Placement;
using Polly;

namespace Orleans.MoE.Grains.Replicas;

/// <summary>
/// One data-parallel replica of a job, pinned to the silo its plan names. Every call returns quickly: chunks of
/// steps run on the silo's device executor and the replica reports them to the coordinator when they finish.
/// </summary>
[PlanPlacement]
[Immovable]
public sealed partial class ReplicaGrain(ITrainingDevice device, SiloIdentity silo, ControlPlaneResilience resilience, ILogger<ReplicaGrain> log)
    : Grain, IReplicaGrain
{
    ReplicaAssignment? assignment;

    // The assignment being prepared: a lost member can abort its data plane while the ranks are still joining.
    ReplicaAssignment? preparing;

    // A generation aborted before its Prepare arrived here: that Prepare fails at once instead of waiting for peers.
    (long Generation, string Reason)? abortedEarly;
    SessionInfo? session;
    long step;
    long lastQueuedFrom = -1;
    bool running;
    CancellationTokenSource stopping = new();

    public Task<byte[]> CreateDataPlaneId() => device.CreateNcclIdAsync();

    public async Task<ReplicaState> Prepare(ReplicaAssignment request)
    {
        if (assignment is { } current)
        {
            if (current.Generation != request.Generation || current.JobId != request.JobId)
                throw new InvalidOperationException($"replica {this.GetPrimaryKeyString()} already serves {current.SessionKey}, not {request.SessionKey}");
            return State();
        }
        if (abortedEarly is { } aborted && aborted.Generation == request.Generation)
            throw new InvalidOperationException($"replica {this.GetPrimaryKeyString()}: generation {aborted.Generation} was abandoned before it prepared here: {aborted.Reason}");
        // The session lives as long as the job needs it; without this the idle-collection would drop a replica
        // whose only activity is its device executor.
        DelayDeactivation(TimeSpan.FromDays(7));
        preparing = request;
        session = await device.OpenAsync(request, stopping.Token);
        assignment = request;
        preparing = null;
        step = session.Step;
        LogPrepared(log, request.SessionKey, silo.Name, step, session.Device);
        return State();
    }

    public Task BeginSteps(long generation, long fromStep, int count)
    {
        var a = RequireAssignment(generation);
        // Idempotent: a retried BeginSteps for a chunk already queued or run is ignored.
        if (fromStep <= lastQueuedFrom) return Task.CompletedTask;
        if (fromStep != step) throw new InvalidOperationException($"replica {a.SessionKey} is at step {step}, not {fromStep}");
        if (running) throw new InvalidOperationException($"replica {a.SessionKey} is already running a chunk");
        lastQueuedFrom = fromStep;
        running = true;
        _ = RunChunk(a, fromStep, count);
        return Task.CompletedTask;
    }

    async Task RunChunk(ReplicaAssignment a, long fromStep, int count)
    {
        ChunkResult result;
        try
        {
            var run = await device.RunStepsAsync(a.SessionKey, count, stopping.Token);
            if (run.Steps.Count > 0) step = run.Steps[^1].Step;
            result = new ChunkResult { Generation = a.Generation, FromStep = fromStep, Steps = run.Steps, DeviceSeconds = run.DeviceSeconds, Rank = a.Rank };
            RecordExpertLoads(a, run.Steps);
        }
        catch (Exception e)
        {
            LogChunkFailed(log, e, a.SessionKey, fromStep);
            result = new ChunkResult { Generation = a.Generation, FromStep = fromStep, Steps = [], DeviceSeconds = 0, Error = e.Message, Rank = a.Rank };
        }
        finally
        {
            running = false;
        }
        var coordinator = GrainFactory.GetGrain<IJobCoordinatorGrain>(a.JobId);
        await resilience.GrainCalls.ExecuteAsync(async _ => await coordinator.StepsCompleted(result));
    }

    /// <summary>
    /// Sends each expert shard of the plan the loads of its experts summed over the chunk (one-way calls). Rank 0
    /// reports: its step reports already hold the loads summed over every rank's tokens.
    /// </summary>
    void RecordExpertLoads(ReplicaAssignment a, IReadOnlyList<StepReport> steps)
    {
        if (steps.Count == 0 || a.Rank != 0) return;
        foreach (var layer in a.Plan.Layers)
        {
            long[] load = new long[layer.ExpertCount], kept = new long[layer.ExpertCount];
            foreach (var s in steps)
            {
                var l = s.Layers.FirstOrDefault(x => x.Layer == layer.Layer);
                if (l is null) continue;
                for (int e = 0; e < load.Length && e < l.Load.Length; e++)
                {
                    load[e] += l.Load[e];
                    kept[e] += l.Kept[e];
                }
            }
            foreach (var (rank, first, last) in layer.Shards())
            {
                var key = PlanKey.ExpertShard(a.JobId, a.Generation, layer.Layer, first, last, a.Plan.Member(rank).Silo);
                _ = GrainFactory.GetGrain<IExpertShardGrain>(key).Record(steps[^1].Step, load[first..(last + 1)], kept[first..(last + 1)]);
            }
        }
    }

    public Task BeginEvaluation(long generation)
    {
        var a = RequireAssignment(generation);
        _ = Evaluate(a);
        return Task.CompletedTask;
    }

    async Task Evaluate(ReplicaAssignment a)
    {
        string? summary = null, checkpoint = null, error = null;
        try
        {
            var result = await device.FinishAsync(a.SessionKey);
            (summary, checkpoint) = (result.SummaryJson, result.Checkpoint);
        }
        catch (Exception e)
        {
            LogChunkFailed(log, e, a.SessionKey, step);
            error = e.Message;
        }
        // Every rank evaluates together; rank 0 reports the result, the others only a failure.
        if (a.Rank != 0 && error is null) return;
        var coordinator = GrainFactory.GetGrain<IJobCoordinatorGrain>(a.JobId);
        await resilience.GrainCalls.ExecuteAsync(async _ => await coordinator.EvaluationCompleted(a.Generation, summary, checkpoint, error));
    }

    public Task<string> Checkpoint(long generation) => device.CheckpointAsync(RequireAssignment(generation).SessionKey);

    public Task Abort(long generation, string reason)
    {
        if ((assignment ?? preparing) is { } a && a.Generation == generation)
        {
            LogAborting(log, a.SessionKey, reason);
            device.AbortDataPlane(a, reason);
        }
        else if (assignment is null && preparing is null)
        {
            abortedEarly = (generation, reason);
        }
        return Task.CompletedTask;
    }

    public async Task<string?> Stop(long generation, bool checkpoint)
    {
        if (assignment is null || assignment.Generation != generation) return null;
        var a = assignment;
        await stopping.CancelAsync();
        // The executor runs one thing at a time, so these wait for the step in progress to end.
        string? written = checkpoint ? await device.CheckpointAsync(a.SessionKey) : null;
        await device.CloseAsync(a.SessionKey);
        assignment = null;
        stopping = new CancellationTokenSource();
        DeactivateOnIdle();
        return written;
    }

    public async Task Park(long generation, ExecutionPlan? next)
    {
        // Idempotent like Stop: a retry after a lost reply finds the session parked already.
        if (assignment is not { } a || a.Generation != generation) return;
        await stopping.CancelAsync();
        // Waits for the step in progress, like Stop; the run stays on the device for the next generation.
        await device.ParkAsync(a.SessionKey, next);
        assignment = null;
        stopping = new CancellationTokenSource();
        DeactivateOnIdle();
    }

    public Task<ReplicaState> GetState() => Task.FromResult(State());

    ReplicaState State() => new(silo.Name, assignment?.Generation ?? 0, step, running, session?.Device, session?.Parameters ?? 0, session?.HandoffBytes ?? 0, session?.HandoffSeconds ?? 0);

    ReplicaAssignment RequireAssignment(long generation) =>
        assignment is { } a && a.Generation == generation
            ? a
            : throw new InvalidOperationException($"replica {this.GetPrimaryKeyString()} is not prepared for generation {generation}");

    [LoggerMessage(Level = LogLevel.Information, Message = "Replica {Session} ready on silo {Silo} at step {Step} ({Device})")]
    static partial void LogPrepared(ILogger logger, string session, string silo, long step, string device);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replica {Session} aborts its data plane: {Reason}")]
    static partial void LogAborting(ILogger logger, string session, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Replica {Session} failed after step {Step}")]
    static partial void LogChunkFailed(ILogger logger, Exception exception, string session, long step);
}
