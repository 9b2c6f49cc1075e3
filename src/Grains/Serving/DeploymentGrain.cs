using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Planning;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// A deployment: replicas of L × G silos each (one silo unless the spec slices the model) on the silos the cluster
/// gives it, each loaded in the background (a large checkpoint takes minutes, and the cluster grain that starts it
/// must not wait) and listed to the routers by its rank 0 once ready. When membership changes it asks the cluster for
/// its silos again: a replica that lost a silo is dropped (its requests fail as retryable, its other silos are
/// unloaded), and the silos left over and new ones form new replicas up to the spec's target.
/// </summary>
public sealed partial class DeploymentGrain(
    [PersistentState("deployment", StorageNames.Jobs)] IPersistentState<DeploymentRecord> store,
    ILogger<DeploymentGrain> log) : Grain, IDeploymentGrain
{
    // By each replica's rank-0 silo, in memory: a reactivated deployment loads its replicas again (found open).
    readonly HashSet<string> ready = [];
    readonly HashSet<string> loading = [];
    readonly Dictionary<string, string> errors = [];
    int contextLength;
    Task? reconciling;
    bool reconcileAgain;

    static readonly TimeSpan ShortRetry = TimeSpan.FromSeconds(5);

    DeploymentRecord R => store.State;

    IClusterGrain Cluster => GrainFactory.GetGrain<IClusterGrain>(IClusterGrain.Key);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        this.RegisterGrainTimer(ReconcileWhileShort, ShortRetry, ShortRetry);
        // What is ready lives in this activation; idle collection would make the next request wait for a reload.
        DelayDeactivation(TimeSpan.FromDays(3650));
        if (R.Spec is not null && !R.Stopped)
        {
            foreach (var replica in R.Replicas) _ = LoadReplica(replica);
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
        if (members.Count != spec.Replicas * spec.RanksPerReplica)
            throw new ArgumentException($"{members.Count} silos for {spec.Replicas} replicas of {spec.RanksPerReplica}", nameof(members));
        R.Spec = spec;
        R.Members = [.. members];
        R.Replicas = [];
        R.Created = DateTimeOffset.UtcNow;
        R.Stopped = false;
        var (_, formed) = Regroup();
        await store.WriteStateAsync();
        foreach (var replica in formed) _ = LoadReplica(replica);
        // Not awaited: the cluster grain is waiting for this call, and answers the resize only after it.
        if (spec.TargetReplicas > spec.Replicas) _ = ClusterChanged();
        return await GetState();
    }

    /// <summary>
    /// Reconciles with the cluster. Runs one pass at a time (the activation's own pass may overlap a notification), and
    /// a change that arrives during a pass gets another, so an older answer never overwrites a newer one.
    /// </summary>
    public async Task ClusterChanged()
    {
        if (reconciling is { IsCompleted: false })
        {
            reconcileAgain = true;
            await reconciling;
            return;
        }
        reconciling = ReconcileUntilSettled();
        await reconciling;
    }

    async Task ReconcileUntilSettled()
    {
        do
        {
            reconcileAgain = false;
            await Reconcile();
        }
        while (reconcileAgain);
    }

    /// <summary>
    /// A safety net under the notifications: while the deployment is short of its target (a silo lost, or fewer than a
    /// replica's worth free), it asks the cluster again every few seconds.
    /// </summary>
    Task ReconcileWhileShort()
    {
        var spec = R.Spec;
        return spec is null || R.Stopped || R.Replicas.Count >= spec.TargetReplicas ? Task.CompletedTask : ClusterChanged();
    }

    async Task Reconcile()
    {
        if (R.Spec is not { } spec || R.Stopped) return;
        var members = await Cluster.ResizeDeployment(spec.Name, spec.TargetReplicas * spec.RanksPerReplica);
        if (R.Stopped) return;
        if (members.Select(m => m.Silo).ToHashSet().SetEquals(R.Members.Select(m => m.Silo))) return;
        R.Members = [.. members];
        var (broken, formed) = Regroup();
        foreach (var replica in broken)
        {
            ready.Remove(replica[0]);
            errors.Remove(replica[0]);
            LogReplicaGone(log, spec.Name, replica[0]);
            // Drained silos and the survivors of a lost one still hold the replica's model; a lost silo has nothing.
            foreach (string silo in replica) _ = UnloadQuietly(silo);
        }
        await store.WriteStateAsync();
        foreach (var replica in formed) _ = LoadReplica(replica);
    }

    /// <summary>
    /// Keeps the replicas whose silos are all still members and forms new ones from the other members, L × G at a
    /// time in member order (members too few for a whole replica wait for more).
    /// </summary>
    (List<List<string>> Broken, List<List<string>> Formed) Regroup()
    {
        int ranks = R.Spec!.RanksPerReplica;
        var present = R.Members.Select(m => m.Silo).ToHashSet();
        var kept = R.Replicas.Where(r => r.All(present.Contains)).ToList();
        var broken = R.Replicas.Where(r => !r.All(present.Contains)).ToList();
        var used = kept.SelectMany(r => r).ToHashSet();
        var formed = R.Members.Select(m => m.Silo).Where(s => !used.Contains(s)).Chunk(ranks).Where(c => c.Length == ranks).Select(c => c.ToList()).ToList();
        R.Replicas = [.. kept, .. formed];
        return (broken, formed);
    }

    async Task LoadReplica(List<string> replica)
    {
        var spec = R.Spec!;
        string leader = replica[0];
        if (!loading.Add(leader)) return;
        try
        {
            var members = replica.Select((silo, rank) => (R.Members.FirstOrDefault(m => m.Silo == silo)
                ?? throw new InvalidOperationException($"silo {silo} is no longer a member")) with
            { Rank = rank }).ToArray();
            string dataPlane = members.Length == 1 ? "none" : ExecutionPlanBuilder.DataPlaneFor(members);
            if (dataPlane == "mpi") throw new NotSupportedException("a serving replica of several silos needs them in one process (shared memory) or on GPUs (NCCL); MPI worlds are for jobs");
            byte[]? id = dataPlane == "nccl" ? await Replica(leader).CreateDataPlaneId() : null;
            long formation = ++R.Formations;
            // Every rank together: the ranks of a replica meet in its data plane while they load.
            var lengths = await Task.WhenAll(members.Select(m => Replica(m.Silo).Load(spec, new ServingRole
            {
                Members = members,
                Rank = m.Rank,
                DataPlane = dataPlane,
                DataPlaneId = id,
                Formation = formation,
            })));
            // The replica may have been dropped while it loaded.
            if (R.Replicas.Any(r => r[0] == leader))
            {
                ready.Add(leader);
                errors.Remove(leader);
                contextLength = lengths.Min();
                LogReplicaReady(log, spec.Name, leader);
            }
        }
        catch (Exception e)
        {
            errors[leader] = e.Message;
            LogReplicaFailed(log, e, spec.Name, leader);
        }
        finally
        {
            loading.Remove(leader);
        }
    }

    IServingReplicaGrain Replica(string silo) => GrainFactory.GetGrain<IServingReplicaGrain>(PlanKey.ServingReplica(R.Spec!.Name, silo));

    async Task UnloadQuietly(string silo)
    {
        try
        {
            await Replica(silo).Unload();
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
            ? R.Replicas.Where(r => ready.Contains(r[0])).Select(r => PlanKey.ServingReplica(R.Spec.Name, r[0])).ToArray()
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
            Silos = R.Members.Select(m => m.Silo).ToArray(),
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
