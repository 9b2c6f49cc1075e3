using System.Collections.Concurrent;
using System.Threading.Channels;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;

namespace Orleans.MoE.Silo.Device;

/// <summary>The serving sessions on this silo's device, one per replica key.</summary>
public sealed class ServingSessions(DeviceExecutor executor, SiloIdentity silo) : IServingDevice, IAsyncDisposable
{
    readonly ConcurrentDictionary<string, Lazy<Task<ServingSession>>> sessions = new();

    public async Task<int> OpenAsync(string key, DeploymentSpec spec)
    {
        var opening = sessions.GetOrAdd(key, _ => new Lazy<Task<ServingSession>>(() => ServingSession.OpenAsync(executor, spec, silo.Name, silo.Device)));
        try
        {
            return (await opening.Value).ContextLength;
        }
        catch
        {
            // A failed load is not kept: deploying again tries again.
            sessions.TryRemove(new KeyValuePair<string, Lazy<Task<ServingSession>>>(key, opening));
            throw;
        }
    }

    public ChannelReader<CompletionChunk> Submit(string key, string requestId, CompletionRequest request) => Session(key).Submit(requestId, request);

    public void Cancel(string key, string requestId)
    {
        if (sessions.TryGetValue(key, out var opening) && opening.Value.IsCompletedSuccessfully) opening.Value.Result.Cancel(requestId);
    }

    public ReplicaLoad LoadOf(string key) => Session(key).Load();

    public async Task CloseAsync(string key)
    {
        if (sessions.TryRemove(key, out var opening)) await (await opening.Value).DisposeAsync();
    }

    ServingSession Session(string key) =>
        sessions.TryGetValue(key, out var opening) && opening.Value.IsCompletedSuccessfully
            ? opening.Value.Result
            : throw new InvalidOperationException($"replica {key} is not loaded on silo {silo.Name}");

    public async ValueTask DisposeAsync()
    {
        foreach (var key in sessions.Keys) await CloseAsync(key);
    }
}
