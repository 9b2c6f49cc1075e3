using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>The cluster (key "cluster"): devices and their health, the job list and queue, which silos a job gets.</summary>
public interface IClusterGrain : IGrainWithStringKey
{
    /// <summary>The one key this grain is used with.</summary>
    public const string Key = "cluster";

    /// <summary>Records a new job, starts its coordinator and returns the job id.</summary>
    Task<string> Submit(JobSubmission submission);

    [AlwaysInterleave]
    Task<IReadOnlyList<JobListing>> ListJobs();

    /// <summary>Silos, their devices, health and last heartbeat, grains per silo.</summary>
    [AlwaysInterleave]
    Task<IReadOnlyList<SiloStatusReport>> GetSilos();

    [OneWay]
    Task Heartbeat(SiloHealth health);

    /// <summary>Gives a job <paramref name="count"/> free silos, or none (the job stays queued) when too few are free.</summary>
    Task<IReadOnlyList<PlanMember>> AssignSilos(string jobId, int count);

    /// <summary>Frees a job's silos and starts the next queued job that fits.</summary>
    Task ReleaseSilos(string jobId);
}
