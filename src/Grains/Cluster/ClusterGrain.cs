using System.Globalization;
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
public sealed class ClusterGrain(
    [PersistentState("cluster", StorageNames.Jobs)] IPersistentState<ClusterState> store,
    IClusterMembershipService membership,
    ISiloMetadataCache metadata,
    ControlPlaneResilience resilience) : Grain, IClusterGrain
{
    readonly Dictionary<string, SiloHealth> health = [];

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

    public Task<IReadOnlyList<JobListing>> ListJobs() => Task.FromResult<IReadOnlyList<JobListing>>(S.Jobs.ToArray());

    public Task Heartbeat(SiloHealth report)
    {
        bool isNew = !health.ContainsKey(report.Silo);
        health[report.Silo] = report;
        // A silo that has just joined may be what a queued job waits for.
        if (isNew) StartQueuedJobs();
        return Task.CompletedTask;
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
                RunningJob = S.SilosByJob.FirstOrDefault(p => p.Value.Contains(name)).Key,
                Grains = grains.GetValueOrDefault(name) ?? [],
            };
        }).ToArray();
    }

    public async Task<IReadOnlyList<PlanMember>> AssignSilos(string jobId, int count)
    {
        var active = ActiveSilos();
        if (S.SilosByJob.TryGetValue(jobId, out var held))
            return held.Select((s, i) => Member(active, s, i)).ToArray();
        var busy = S.SilosByJob.Values.SelectMany(s => s).ToHashSet();
        var free = active.Where(a => !busy.Contains(a.Name)).OrderBy(a => a.Name, StringComparer.Ordinal).ToList();
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
                    int.TryParse(md.GetValueOrDefault(SiloMetadataKeys.MpiRank), out int mpi) ? mpi : -1);
            })
            .ToArray();

    Task Save() => resilience.Storage.ExecuteAsync(async _ => await store.WriteStateAsync()).AsTask();

    readonly record struct ActiveSilo(string Name, SiloAddress Address, string Node, string Device, string Process, int MpiRank);
}
