using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Grains.Placement;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// A deployment: one serving replica on each silo the cluster gives it, each loaded in the background (a large
/// checkpoint takes minutes, and the cluster grain that starts it must not wait) and listed to the routers once it is
/// ready. When membership changes it asks the cluster for its silos again: replicas on lost silos are forgotten (their
/// requests fail as retryable), free silos get new replicas up to the spec's target.
/// </summary>
public sealed partial class DeploymentGrain(
    [PersistentState("deployment", StorageNames.Jobs)] IPersistentState<DeploymentRecord> store,
    ILogger<DeploymentGrain> log) : Grain, IDeploymentGrain
{
    // Per silo, in memory: a reactivated deployment loads its replicas again (their sessions are found open).
    readonly HashSet<string> ready = [];
    readonly HashSet<string> loading = [];
    readonly Dictionary<string, string> errors = [];
    int contextLength;

    DeploymentRecord R => store.State;

    IClusterGrain Cluster => GrainFactory.GetGrain<IClusterGrain>(IClusterGrain.Key);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (R.Spec is not null && !R.Stopped)
        {
            foreach (var member in R.Members) _ = LoadReplica(member.Silo);
            // Silos may have come or gone while no activation listened.
            _ = ClusterChanged();
        }
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
        foreach (var member in members) _ = LoadReplica(member.Silo);
        // Not awaited: the cluster grain is waiting for this call, and answers the resize only after it.
        if (spec.TargetReplicas > spec.Replicas) _ = ClusterChanged();
        return await GetState();
    }

    public async Task ClusterChanged()
    {
        if (R.Spec is not { } spec || R.Stopped) return;
        var members = await Cluster.ResizeDeployment(spec.Name, spec.TargetReplicas);
        if (R.Stopped) return;
        var now = members.Select(m => m.Silo).ToHashSet();
        var before = R.Members.Select(m => m.Silo).ToHashSet();
        if (now.SetEquals(before)) return;
        foreach (string gone in before.Except(now))
        {
            ready.Remove(gone);
            errors.Remove(gone);
            LogReplicaGone(log, spec.Name, gone);
            // A drained silo is still there, with the replica's model loaded; a lost one has nothing to unload.
            _ = UnloadQuietly(gone);
        }
        R.Members = [.. members];
        await store.WriteStateAsync();
        foreach (string added in now.Except(before)) _ = LoadReplica(added);
    }

    async Task LoadReplica(string silo)
    {
        var spec = R.Spec!;
        if (!loading.Add(silo)) return;
        try
        {
            int length = await GrainFactory.GetGrain<IServingReplicaGrain>(PlanKey.ServingReplica(spec.Name, silo)).Load(spec);
            // The silo may have left the deployment while it loaded.
            if (R.Members.Any(m => m.Silo == silo))
            {
                ready.Add(silo);
                errors.Remove(silo);
                contextLength = length;
                LogReplicaReady(log, spec.Name, silo);
            }
        }
        catch (Exception e)
        {
            errors[silo] = e.Message;
            LogReplicaFailed(log, e, spec.Name, silo);
        }
        finally
        {
            loading.Remove(silo);
        }
    }

    async Task UnloadQuietly(string silo)
    {
        try
        {
            await GrainFactory.GetGrain<IServingReplicaGrain>(PlanKey.ServingReplica(R.Spec!.Name, silo)).Unload();
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            // The silo is gone, and the replica with it.
        }
    }

    DeploymentStatus Status =>
        R.Spec is null ? DeploymentStatus.Unknown
        : R.Stopped ? DeploymentStatus.Stopped
        : ready.Count > 0 ? DeploymentStatus.Ready
        : loading.Count > 0 || errors.Count == 0 ? DeploymentStatus.Loading
        : DeploymentStatus.Failed;

    public async Task<DeploymentState> GetState()
    {
        if (R.Spec is null) return new DeploymentState { Spec = new DeploymentSpec { Name = this.GetPrimaryKeyString(), Checkpoint = "" }, Status = DeploymentStatus.Unknown };
        var status = Status;
        var keys = status == DeploymentStatus.Ready
            ? R.Members.Where(m => ready.Contains(m.Silo)).Select(m => PlanKey.ServingReplica(R.Spec.Name, m.Silo)).ToArray()
            : [];
        var loads = new List<ReplicaLoad>();
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
        return new DeploymentState
        {
            Spec = R.Spec,
            Status = status,
            Replicas = keys,
            Loads = loads,
            Error = errors.Count == 0 ? null : string.Join("; ", errors.Select(e => $"{e.Key}: {e.Value}")),
            ContextLength = contextLength,
            Created = R.Created,
        };
    }

    public async Task Stop()
    {
        if (R.Spec is null || R.Stopped) return;
        R.Stopped = true;
        await store.WriteStateAsync();
        await Task.WhenAll(R.Members.Select(m => UnloadQuietly(m.Silo)));
        ready.Clear();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deployment {Name}: replica on {Silo} is ready")]
    static partial void LogReplicaReady(ILogger logger, string name, string silo);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {Name}: replica on {Silo} failed to load")]
    static partial void LogReplicaFailed(ILogger logger, Exception exception, string name, string silo);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deployment {Name}: lost the replica on {Silo}")]
    static partial void LogReplicaGone(ILogger logger, string name, string silo);
}
