using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Grains.Placement;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// A deployment: one serving replica on each silo the cluster gave it, loaded in the background (a large checkpoint
/// takes minutes, and the cluster grain that starts it must not wait), then listed to the routers while ready.
/// </summary>
public sealed partial class DeploymentGrain(
    [PersistentState("deployment", StorageNames.Jobs)] IPersistentState<DeploymentRecord> store,
    ILogger<DeploymentGrain> log) : Grain, IDeploymentGrain
{
    DeploymentStatus status;
    string? error;
    int contextLength;

    DeploymentRecord R => store.State;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Moved to another silo: the replicas' sessions are still open, and loading them again finds them.
        if (R.Spec is not null && !R.Stopped) StartLoading();
        return Task.CompletedTask;
    }

    public async Task<DeploymentState> Start(DeploymentSpec spec, IReadOnlyList<PlanMember> members)
    {
        spec.Validate();
        if (R.Spec is not null && !R.Stopped)
        {
            if (R.Spec != spec) throw new InvalidOperationException($"model '{spec.Name}' is already deployed from {R.Spec.Checkpoint}; undeploy it first");
            return await GetState();
        }
        if (members.Count != spec.Replicas) throw new ArgumentException($"{members.Count} silos for {spec.Replicas} replicas", nameof(members));
        R.Spec = spec;
        R.Members = [.. members];
        R.Created = DateTimeOffset.UtcNow;
        R.Stopped = false;
        await store.WriteStateAsync();
        StartLoading();
        return await GetState();
    }

    void StartLoading()
    {
        status = DeploymentStatus.Loading;
        error = null;
        _ = LoadAll();
    }

    async Task LoadAll()
    {
        var spec = R.Spec!;
        try
        {
            var lengths = await Task.WhenAll(ReplicaKeys().Select(key => GrainFactory.GetGrain<IServingReplicaGrain>(key).Load(spec)));
            contextLength = lengths.Min();
            status = DeploymentStatus.Ready;
            LogReady(log, spec.Name, spec.Replicas);
        }
        catch (Exception e)
        {
            status = DeploymentStatus.Failed;
            error = e.Message;
            LogFailed(log, e, spec.Name);
        }
    }

    IEnumerable<string> ReplicaKeys() => R.Members.Select((m, i) => PlanKey.ServingReplica(R.Spec!.Name, i, m.Silo));

    public async Task<DeploymentState> GetState()
    {
        if (R.Spec is null) return new DeploymentState { Spec = new DeploymentSpec { Name = this.GetPrimaryKeyString(), Checkpoint = "" }, Status = DeploymentStatus.Unknown };
        var keys = ReplicaKeys().ToArray();
        var loads = new List<ReplicaLoad>();
        if (status == DeploymentStatus.Ready)
        {
            var asked = keys.Select(key => GrainFactory.GetGrain<IServingReplicaGrain>(key).GetLoad()).ToArray();
            foreach (var answer in asked)
            {
                try
                {
                    loads.Add(await answer);
                }
                catch (Exception e) when (e is TimeoutException or OrleansException or InvalidOperationException)
                {
                    // A replica that does not answer (its silo or session is gone) is left out of the loads.
                }
            }
        }
        return new DeploymentState
        {
            Spec = R.Spec,
            Status = R.Stopped ? DeploymentStatus.Stopped : status,
            Replicas = keys,
            Loads = loads,
            Error = error,
            ContextLength = contextLength,
            Created = R.Created,
        };
    }

    public async Task Stop()
    {
        if (R.Spec is null || R.Stopped) return;
        R.Stopped = true;
        await store.WriteStateAsync();
        await Task.WhenAll(ReplicaKeys().Select(key => GrainFactory.GetGrain<IServingReplicaGrain>(key).Unload()));
        status = DeploymentStatus.Stopped;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deployment {Name} is ready on {Replicas} replicas")]
    static partial void LogReady(ILogger logger, string name, int replicas);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {Name} failed to load")]
    static partial void LogFailed(ILogger logger, Exception exception, string name);
}
