using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// One silo's part of a deployment's replica, pinned to its silo (key from <see cref="Placement.PlanKey.ServingReplica"/>):
/// it owns a serving session on the silo's device. The replica's rank 0 batches every request the replica is given;
/// its other ranks (tensor and expert slices) run the forwards it broadcasts.
/// </summary>
public interface IServingReplicaGrain : IGrainWithStringKey
{
    /// <summary>
    /// Loads this silo's part of a replica (the whole model, or its slice when the replica spans several silos, all
    /// of which are asked together); returns the model's context length. Idempotent.
    /// </summary>
    [ResponseTimeout("00:20:00")]
    Task<int> Load(DeploymentSpec spec, ServingRole role);

    /// <summary>For a replica of GPU silos, asked of its rank 0 first: a new NCCL unique id from this silo.</summary>
    [ResponseTimeout("00:02:00")]
    Task<byte[]> CreateDataPlaneId();

    /// <summary>
    /// Streams one completion. Throws <see cref="InferenceBusyException"/> when this replica's queue is full and
    /// ArgumentException for a request it cannot serve; disposing the stream early cancels the request.
    /// </summary>
    [AlwaysInterleave]
    IAsyncEnumerable<CompletionChunk> Generate(CompletionRequest request, CancellationToken cancellation = default);

    [AlwaysInterleave]
    Task<ReplicaLoad> GetLoad();

    /// <summary>Closes the session; requests in flight end "cancelled".</summary>
    Task Unload();
}
