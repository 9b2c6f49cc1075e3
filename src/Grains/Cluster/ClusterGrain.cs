using System.Globalization;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Resilience;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Polly;

namespace Orleans.MoE.Grains.Cluster;

/// <summary>
/// The cluster's view of itself (key "cluster"): which silos are active with which device (membership plus silo
/// metadata), their health from heartbeats, the jobs and their queue, and which silos each job holds.
/// </summary>
public sealed partial class ClusterGrain(
    [PersistentState("cluster", StorageNames.Jobs)] IPersistentState<ClusterState> store,
    IClusterMembershipService membership,
    ISiloMetadataCache metadata,
    ControlPlaneResilience resilience,
    ILogger<ClusterGrain> log) : Grain, IClusterGrain
{
    readonly Dictionary<string, SiloHealth> health = [];
    readonly HashSet<string> assignable = [];

    // The newest membership version the running jobs were told about: every silo forwards every version it sees.
    long notifiedVersion = -1;

    ClusterState S => store.State;

    public async Task<string> Submit(JobSubmission submission)
    {
        string name = Kernels.Config.JobConfig.Parse(submission.ConfigJson).Name;
        string jobId = string.Create(CultureInfo.InvariantCulture, $"{name}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Random.Shared.Next(0x10000):x4}");
        S.Jobs.Add(new JobListing(jobId, name, DateTimeOffset.UtcNow));
        await Save();
        await GrainFactory.GetGrain<IJobCoordinatorGrain>(jobId).Start(submission);
        return jobId;
    }

    public async Task<DeploymentState> Deploy(DeploymentSpec spec)
    {
        spec.Validate();
        var deployment = GrainFactory.GetGrain<IDeploymentGrain>(spec.Name);
        var active = ActiveSilos();
        if (S.SilosByDeployment.TryGetValue(spec.Name, out var held))
            return await deployment.Start(spec, held.Select((silo, i) => Member(active, silo, i)).ToArray());
        var free = FreeSilos(active);
        int needed = spec.Replicas * spec.RanksPerReplica;
        if (free.Count < needed)
            throw new InvalidOperationException($"model '{spec.Name}' needs {needed} free silo(s) ({spec.Replicas} replica(s) of {spec.RanksPerReplica}); {free.Count} are free (start silos, or undeploy or cancel something)");
        var chosen = free.Take(needed).Select(a => a.Name).ToList();
        S.SilosByDeployment[spec.Name] = chosen;
        await Save();
        try
        {
            return await deployment.Start(spec, chosen.Select((silo, i) => Member(active, silo, i)).ToArray());
        }
        catch
        {
            S.SilosByDeployment.Remove(spec.Name);
            await Save();
            throw;
        }
    }

    public async Task<IReadOnlyList<PlanMember>> ResizeDeployment(string name, int count)
    {
        if (!S.SilosByDeployment.TryGetValue(name, out var held)) return [];
        var active = ActiveSilos();
        var alive = active.Select(a => a.Name).ToHashSet();
        // Jobs waiting for silos come first: a deployment only replaces or grows into silos nobody queues for.
        var free = S.Queue.Count == 0 ? FreeSilos(active).Select(a => a.Name) : [];
        var chosen = held.Where(s => alive.Contains(s) && !S.Drained.Contains(s)).Concat(free).Take(count).ToList();
        if (!chosen.SequenceEqual(held))
        {
            S.SilosByDeployment[name] = chosen;
            await Save();
            StartQueuedJobs();
        }
        return chosen.Select((s, i) => Member(active, s, i)).ToArray();
    }

    public Task<IReadOnlyList<string>> ListDeployments() => Task.FromResult<IReadOnlyList<string>>(S.SilosByDeployment.Keys.Order(StringComparer.Ordinal).ToArray());

    public async Task<bool> Undeploy(string name)
    {
        if (!S.SilosByDeployment.ContainsKey(name)) return false;
        await GrainFactory.GetGrain<IDeploymentGrain>(name).Stop();
        S.SilosByDeployment.Remove(name);
        await Save();
        StartQueuedJobs();
        return true;
    }

    public Task<IReadOnlyList<JobListing>> ListJobs() => Task.FromResult<IReadOnlyList<JobListing>>(S.Jobs.ToArray());

    public Task Heartbeat(SiloHealth report)
    {
        health[report.Silo] = report;
        // A silo becomes assignable once its metadata has reached this silo's cache: that first beat may be what a
        // queued or growing job waits for.
        if (!assignable.Contains(report.Silo) && ActiveSilos().Any(a => a.Name == report.Silo && a.Known))
        {
            assignable.Add(report.Silo);
            NotifyJobs();
        }
        return Task.CompletedTask;
    }

    public async Task MembershipChanged(long version)
    {
        if (version <= notifiedVersion) return;
        // This silo's snapshot may lag the one that forwarded the change; decisions are made on the newer one.
        await membership.Refresh(new MembershipVersion(version));
        notifiedVersion = Math.Max(notifiedVersion, membership.CurrentSnapshot.Version.Value);
        NotifyJobs();
    }

    public async Task<IReadOnlyList<string>> Drain(string silo)
    {
        if (!S.Drained.Contains(silo))
        {
            S.Drained.Add(silo);
            await Save();
        }
        var jobs = S.SilosByJob.Where(p => p.Value.Contains(silo)).Select(p => p.Key).ToArray();
        foreach (var job in jobs) _ = Tell(job);
        var deployments = S.SilosByDeployment.Where(p => p.Value.Contains(silo)).Select(p => p.Key).ToArray();
        foreach (var deployment in deployments) _ = TellDeployment(deployment);
        return [.. jobs, .. deployments.Select(d => "serve/" + d)];
    }

    public async Task<bool> Undrain(string silo)
    {
        if (!S.Drained.Remove(silo)) return false;
        await Save();
        NotifyJobs();
        return true;
    }

    public Task<JobSiloView> ViewFor(string jobId)
    {
        var active = ActiveSilos();
        var held = S.SilosByJob.GetValueOrDefault(jobId) ?? [];
        return Task.FromResult(new JobSiloView(active.Select(a => a.Name).ToArray(), held.Where(S.Drained.Contains).ToArray(), FreeSilos(active).Count));
    }

    public async Task<IReadOnlyList<PlanMember>> ResizeSilos(string jobId, int count)
    {
        var active = ActiveSilos();
        var alive = active.Select(a => a.Name).ToHashSet();
        var kept = (S.SilosByJob.GetValueOrDefault(jobId) ?? []).Where(s => alive.Contains(s) && !S.Drained.Contains(s));
        var chosen = kept.Concat(FreeSilos(active).Select(a => a.Name)).Take(count).ToList();
        if (chosen.Count > 0) S.SilosByJob[jobId] = chosen;
        else S.SilosByJob.Remove(jobId);
        await Save();
        // Silos the job gave up may be what a queued job waits for.
        StartQueuedJobs();
        return chosen.Select((s, i) => Member(active, s, i)).ToArray();
    }

    public async Task<IReadOnlyList<SiloStatusReport>> GetSilos()
    {
        var active = ActiveSilos();
        Dictionary<string, Dictionary<string, int>> grains = [];
        try
        {
            var stats = await GrainFactory.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
            foreach (var s in stats)
            {
                string silo = active.FirstOrDefault(a => a.Address.Equals(s.SiloAddress)).Name ?? s.SiloAddress.ToString();
                var byType = grains.TryGetValue(silo, out var d) ? d : grains[silo] = [];
                string type = s.GrainType.Split(',')[0].Split('.')[^1];
                byType[type] = byType.GetValueOrDefault(type) + s.ActivationCount;
            }
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            // Grain counts are a nicety; a silo that does not answer still shows with its health.
        }
        var now = DateTimeOffset.UtcNow;
        var names = active.Select(a => a.Name).Union(health.Keys).Order(StringComparer.Ordinal);
        return names.Select(name =>
        {
            var a = active.FirstOrDefault(x => x.Name == name);
            var h = health.TryGetValue(name, out var known) ? known : new SiloHealth
            {
                Silo = name,
                Address = a.Address?.ToString() ?? "?",
                Node = a.Node ?? "?",
                Device = a.Device ?? "?",
                DeviceMemoryBytes = 0,
                ProcessMemoryBytes = 0,
                Utilisation = 0,
                QueuedWork = 0,
                At = DateTimeOffset.MinValue,
            };
            return new SiloStatusReport
            {
                Health = h,
                HeartbeatAgeSeconds = h.At == DateTimeOffset.MinValue ? double.PositiveInfinity : (now - h.At).TotalSeconds,
                Active = a.Name is not null,
                RunningJob = S.SilosByJob.FirstOrDefault(p => p.Value.Contains(name)).Key
                    ?? S.SilosByDeployment.Where(p => p.Value.Contains(name)).Select(p => "serve/" + p.Key).FirstOrDefault(),
                Draining = S.Drained.Contains(name),
                Grains = grains.GetValueOrDefault(name) ?? [],
            };
        }).ToArray();
    }

    public async Task<IReadOnlyList<PlanMember>> AssignSilos(string jobId, int count)
    {
        var active = ActiveSilos();
        if (S.SilosByJob.TryGetValue(jobId, out var held))
            return held.Select((s, i) => Member(active, s, i)).ToArray();
        var free = FreeSilos(active);
        // Queue order is kept: a job asking ahead of an earlier queued one waits behind it.
        int position = S.Queue.IndexOf(jobId);
        bool aheadInQueue = S.Queue.Take(position < 0 ? S.Queue.Count : position).Any();
        if (free.Count < count || aheadInQueue)
        {
            if (position < 0) S.Queue.Add(jobId);
            await Save();
            return [];
        }
        var chosen = free.Take(count).Select(a => a.Name).ToList();
        S.SilosByJob[jobId] = chosen;
        S.Queue.Remove(jobId);
        await Save();
        return chosen.Select((s, i) => Member(active, s, i)).ToArray();
    }

    public async Task ReleaseSilos(string jobId)
    {
        bool changed = S.SilosByJob.Remove(jobId) | S.Queue.Remove(jobId);
        if (changed) await Save();
        StartQueuedJobs();
    }

    /// <summary>Pokes the first queued job; TryStart is one-way-safe: it calls back into this grain only later.</summary>
    void StartQueuedJobs()
    {
        if (S.Queue.Count > 0) _ = GrainFactory.GetGrain<IJobCoordinatorGrain>(S.Queue[0]).TryStart();
    }

    /// <summary>Tells every job and deployment that holds silos (not awaited: they call back) and pokes the queue.</summary>
    void NotifyJobs()
    {
        foreach (var job in S.SilosByJob.Keys) _ = Tell(job);
        foreach (var deployment in S.SilosByDeployment.Keys) _ = TellDeployment(deployment);
        StartQueuedJobs();
    }

    async Task TellDeployment(string name)
    {
        var deployment = GrainFactory.GetGrain<IDeploymentGrain>(name);
        try
        {
            await resilience.GrainCalls.ExecuteAsync(async _ => await deployment.ClusterChanged());
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogTellFailed(log, e, "serve/" + name);
        }
    }

    /// <summary>
    /// ClusterChanged with retries: a coordinator whose silo has just died is re-activated elsewhere by the retry
    /// (a one-way call would be lost with the old activation, and the job would never hear of the change).
    /// </summary>
    async Task Tell(string jobId)
    {
        var coordinator = GrainFactory.GetGrain<IJobCoordinatorGrain>(jobId);
        try
        {
            await resilience.GrainCalls.ExecuteAsync(async _ => await coordinator.ClusterChanged());
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogTellFailed(log, e, jobId);
        }
    }

    /// <summary>Active silos whose metadata is known, not drained and held by no job or deployment, by name.</summary>
    List<ActiveSilo> FreeSilos(IReadOnlyList<ActiveSilo> active)
    {
        var busy = S.SilosByJob.Values.Concat(S.SilosByDeployment.Values).SelectMany(s => s).ToHashSet();
        return active.Where(a => a.Known && !busy.Contains(a.Name) && !S.Drained.Contains(a.Name)).OrderBy(a => a.Name, StringComparer.Ordinal).ToList();
    }

    static PlanMember Member(IReadOnlyList<ActiveSilo> active, string silo, int rank)
    {
        var a = active.FirstOrDefault(x => x.Name == silo);
        return new PlanMember(silo, rank, a.Node ?? "?", a.Device ?? "?", a.Process ?? "?", a.MpiRank);
    }

    /// <summary>Active silos from membership, named by the metadata they publish.</summary>
    IReadOnlyList<ActiveSilo> ActiveSilos() =>
        membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active)
            .Select(m =>
            {
                var md = metadata.GetSiloMetadata(m.SiloAddress).Metadata;
                return new ActiveSilo(md.GetValueOrDefault(SiloMetadataKeys.Silo) ?? m.Name, m.SiloAddress,
                    md.GetValueOrDefault(SiloMetadataKeys.Node) ?? "?", md.GetValueOrDefault(SiloMetadataKeys.Device) ?? "?",
                    md.GetValueOrDefault(SiloMetadataKeys.Process) ?? "?",
                    int.TryParse(md.GetValueOrDefault(SiloMetadataKeys.MpiRank), out int mpi) ? mpi : -1,
                    md.ContainsKey(SiloMetadataKeys.Silo));
            })
            .ToArray();

    Task Save() => resilience.Storage.ExecuteAsync(async _ => await store.WriteStateAsync()).AsTask();

    /// <param name="Known">Its metadata has reached this silo's cache (a silo that has just joined may not have it yet).</param>
    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell job {JobId} that the cluster changed")]
    static partial void LogTellFailed(ILogger logger, Exception exception, string jobId);

    readonly record struct ActiveSilo(string Name, SiloAddress Address, string Node, string Device, string Process, int MpiRank, bool Known);
}
