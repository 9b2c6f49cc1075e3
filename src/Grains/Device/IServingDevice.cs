using System.Threading.Channels;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Device;

/// <summary>
/// The silo's device as serving grains see it: sessions that batch requests on the device executor. Requests go
/// in as text and come out as text pieces; tensors stay behind this interface (implemented by the silo host).
/// </summary>
public interface IServingDevice
{
    /// <summary>Opens (or finds) the session for a replica key: loads its part of the checkpoint; returns the context length.</summary>
    Task<int> OpenAsync(string key, DeploymentSpec spec, ServingRole role);

    /// <summary>A new NCCL unique id created on this silo (the rendezvous of a GPU replica's ranks).</summary>
    Task<byte[]> CreateNcclIdAsync();

    /// <summary>
    /// Queues a request: its pieces arrive on the returned reader, which completes after the last one. Throws
    /// <see cref="InferenceBusyException"/> when the queue is full, ArgumentException for a request it cannot serve.
    /// </summary>
    ChannelReader<CompletionChunk> Submit(string key, string requestId, CompletionRequest request);

    /// <summary>Drops a request that is waiting or running (its caller went away).</summary>
    void Cancel(string key, string requestId);

    ReplicaLoad LoadOf(string key);

    Task CloseAsync(string key);
}
