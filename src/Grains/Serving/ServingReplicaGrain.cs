using System.Runtime.CompilerServices;
using Orleans.Concurrency;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Grains.Placement;
using Orleans.Placement;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// One serving replica, pinned to the silo its key names. It holds no request state: the silo's serving session
/// batches what every caller submits, and this grain only hands requests over and streams the pieces back. Reentrant,
/// because every stream stays open for as long as its completion runs.
/// </summary>
[PlanPlacement]
[Immovable]
[Reentrant]
public sealed class ServingReplicaGrain(IServingDevice device, SiloIdentity silo) : Grain, IServingReplicaGrain
{
    string Key => this.GetPrimaryKeyString();

    public Task<int> Load(DeploymentSpec spec, ServingRole role)
    {
        // The session lives as long as the deployment; idle collection would drop a replica between requests.
        DelayDeactivation(TimeSpan.FromDays(3650));
        return device.OpenAsync(Key, spec, role);
    }

    public Task<byte[]> CreateDataPlaneId() => device.CreateNcclIdAsync();

    public async IAsyncEnumerable<CompletionChunk> Generate(CompletionRequest request, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        string id = Guid.NewGuid().ToString("N");
        var pieces = device.Submit(Key, id, request);
        bool finished = false;
        try
        {
            await foreach (var chunk in pieces.ReadAllAsync(cancellation))
            {
                finished = chunk.FinishReason is not null;
                yield return chunk with { Replica = silo.Name };
            }
        }
        finally
        {
            // The caller stopped reading (went away, or cancelled): free the request's batch slot.
            if (!finished) device.Cancel(Key, id);
        }
    }

    public Task<ReplicaLoad> GetLoad() => Task.FromResult(device.LoadOf(Key));

    public async Task Unload()
    {
        await device.CloseAsync(Key);
        DeactivateOnIdle();
    }
}
