using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Device;

/// <summary>
/// The silo's device as grains see it: training sessions that run on the silo's device executor. Grains hand work
/// over and get numbers back; the tensors stay behind this interface (implemented by the silo host).
/// </summary>
public interface ITrainingDevice
{
    /// <summary>A new NCCL unique id created on this silo (the rendezvous of an NCCL plan's ranks).</summary>
    Task<byte[]> CreateNcclIdAsync();

    /// <summary>Opens (or finds) the session for an assignment: loads data, builds or restores the model.</summary>
    Task<SessionInfo> OpenAsync(ReplicaAssignment assignment, CancellationToken cancellation);

    /// <summary>Runs up to <paramref name="count"/> steps of a session; stops early (after a whole step) when cancelled.</summary>
    Task<ChunkRun> RunStepsAsync(string sessionKey, int count, CancellationToken cancellation);

    /// <summary>Final evaluation and checkpoint: the run's summary as the console prints it (snake_case JSON).</summary>
    Task<SessionSummary> FinishAsync(string sessionKey);

    /// <summary>Writes a checkpoint of the session now.</summary>
    Task<string> CheckpointAsync(string sessionKey);

    /// <summary>
    /// Makes the data plane of <paramref name="assignment"/>'s generation fail now (not on the executor, which may
    /// be blocked in a collective waiting for a lost rank).
    /// </summary>
    void AbortDataPlane(ReplicaAssignment assignment, string reason);

    /// <summary>Disposes the session's model and optimiser (on the executor), and any run of its job parked for a handoff.</summary>
    Task CloseAsync(string sessionKey);

    /// <summary>
    /// Ends the session's data plane but keeps its model and optimiser on the device, parked for the next
    /// generation of its job, whose session on this silo takes them over (<see cref="ReplicaAssignment.HandoffFrom"/>).
    /// With <paramref name="next"/> (the job shrinks) the state for that plan is staged first, collectively over the
    /// session's data plane; a silo not in <paramref name="next"/> parks nothing.
    /// </summary>
    Task ParkAsync(string sessionKey, ExecutionPlan? next);
}

/// <summary>An open session: where it is and what it is.</summary>
/// <remarks>Handoff: bytes of the previous generation's state this rank received over the data plane, and the seconds it took.</remarks>
public sealed record SessionInfo(long Step, long LastStep, string Device, long Parameters, long HandoffBytes = 0, double HandoffSeconds = 0);

/// <summary>Steps a chunk ran, and the seconds the executor spent on them.</summary>
public sealed record ChunkRun(IReadOnlyList<StepReport> Steps, double DeviceSeconds);

/// <summary>The end of a run: the console's summary JSON and the final checkpoint.</summary>
public sealed record SessionSummary(string SummaryJson, string Checkpoint);
