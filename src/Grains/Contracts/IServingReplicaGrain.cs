using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// One replica of a deployment, pinned to its silo (key from <see cref="Placement.PlanKey.ServingReplica"/>): it owns
/// a serving session on the silo's device, which batches every request the replica is given.
/// </summary>
public interface IServingReplicaGrain : IGrainWithStringKey
{
    /// <summary>Loads the checkpoint on the silo's device; returns the model's context length. Idempotent.</summary>
    [ResponseTimeout("00:20:00")]
    Task<int> Load(DeploymentSpec spec);

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
