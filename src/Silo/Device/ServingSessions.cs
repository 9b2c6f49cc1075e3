using System.Collections.Concurrent;
using System.Threading.Channels;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Kernels.Comm.Nccl;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// The serving sessions on this silo's device, one per replica key: a replica's rank 0 (which takes requests) or
/// one of its other ranks (which runs rank 0's forwards).
/// </summary>
public sealed class ServingSessions(DeviceExecutor executor, SiloIdentity silo) : IServingDevice, IAsyncDisposable
{
    readonly ConcurrentDictionary<string, Lazy<Task<IAsyncDisposable>>> sessions = new();

    public async Task<int> OpenAsync(string key, DeploymentSpec spec, ServingRole role)
    {
        var opening = sessions.GetOrAdd(key, _ => new Lazy<Task<IAsyncDisposable>>(async () => role.Leads
            ? await ServingSession.OpenAsync(executor, spec, role, silo.Name, silo.Device)
            : await ServingFollowerSession.OpenAsync(executor, spec, role, silo.Device)));
        try
        {
            return await opening.Value switch
            {
                ServingSession leader => leader.ContextLength,
                ServingFollowerSession follower => follower.ContextLength,
                var other => throw new InvalidOperationException($"unexpected session {other.GetType().Name}"),
            };
        }
        catch
        {
            // A failed load is not kept: deploying again tries again.
            sessions.TryRemove(new KeyValuePair<string, Lazy<Task<IAsyncDisposable>>>(key, opening));
            throw;
        }
    }

    public Task<byte[]> CreateNcclIdAsync() => executor.RunAsync(() => NcclUniqueId.Create().ToBytes());

    public ChannelReader<CompletionChunk> Submit(string key, string requestId, CompletionRequest request) => Leader(key).Submit(requestId, request);

    public void Cancel(string key, string requestId)
    {
        if (sessions.TryGetValue(key, out var opening) && opening.Value.IsCompletedSuccessfully && opening.Value.Result is ServingSession leader)
            leader.Cancel(requestId);
    }

    public ReplicaLoad LoadOf(string key) => Leader(key).Load();

    public async Task CloseAsync(string key)
    {
        if (sessions.TryRemove(key, out var opening)) await (await opening.Value).DisposeAsync();
    }

    ServingSession Leader(string key) =>
        sessions.TryGetValue(key, out var opening) && opening.Value.IsCompletedSuccessfully
            ? opening.Value.Result as ServingSession ?? throw new InvalidOperationException($"replica {key} on silo {silo.Name} is not its replica's rank 0; requests go to rank 0")
            : throw new InvalidOperationException($"replica {key} is not loaded on silo {silo.Name}");

    public async ValueTask DisposeAsync()
    {
        foreach (var key in sessions.Keys) await CloseAsync(key);
    }
}
