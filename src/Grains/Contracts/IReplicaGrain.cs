using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// One data-parallel replica of a job (key from <see cref="Placement.PlanKey"/>: job, generation, rank and the silo
/// the plan names). It owns a training session on its silo's device executor; every call is short.
/// </summary>
public interface IReplicaGrain : IGrainWithStringKey
{
    /// <summary>
    /// For an NCCL plan, asked of rank 0 before any replica prepares: a new NCCL unique id from this silo (it
    /// listens for the other ranks' bootstrap), which the coordinator hands to every rank in its assignment.
    /// </summary>
    [ResponseTimeout("00:02:00")]
    Task<byte[]> CreateDataPlaneId();

    /// <summary>Loads data and builds (or restores) the model on the device; idempotent for the same generation.</summary>
    /// <remarks>Building a multi-billion-parameter model takes minutes, past Orleans' default 30 s response timeout.</remarks>
    [ResponseTimeout("00:20:00")]
    Task<ReplicaState> Prepare(ReplicaAssignment assignment);

    /// <summary>
    /// Queues <paramref name="count"/> steps after <paramref name="fromStep"/> on the device and returns at once; the
    /// replica calls the coordinator's StepsCompleted when they are done. A repeated call for a chunk already
    /// queued or run is ignored (idempotent by generation and step).
    /// </summary>
    Task BeginSteps(long generation, long fromStep, int count);

    /// <summary>Queues the final evaluation and checkpoint; the replica calls EvaluationCompleted when done.</summary>
    Task BeginEvaluation(long generation);

    /// <summary>Writes a checkpoint of the session now (collective: every rank of the generation is asked together).</summary>
    Task<string> Checkpoint(long generation);

    /// <summary>
    /// Aborts the generation's data plane on this silo (a member was lost): ranks blocked on the lost one throw at
    /// once, so the chunk ends and Stop can close the session. Interleaves: the replica may be waiting on its device.
    /// </summary>
    [AlwaysInterleave]
    Task Abort(long generation, string reason);

    /// <summary>Stops after the step in progress, writes a checkpoint (when asked) and closes the session.</summary>
    [ResponseTimeout("00:20:00")]
    Task<string?> Stop(long generation, bool checkpoint);

    /// <summary>
    /// Stops after the step in progress and parks the session's model and optimiser on the silo for the next
    /// generation, which takes them over the data plane instead of from a checkpoint. With <paramref name="next"/>
    /// (a job that shrinks; collective: every rank is asked together) the ranks first move the experts to the ranks
    /// that hold them in that plan, over this generation's data plane, and a rank that is not in it keeps nothing.
    /// </summary>
    [ResponseTimeout("00:20:00")]
    Task Park(long generation, ExecutionPlan? next);

    [AlwaysInterleave]
    Task<ReplicaState> GetState();
}
