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

    /// <summary>
    /// Changes the silos a running job holds to at most <paramref name="count"/>: its live, undrained silos first (in
    /// their rank order), then free ones; returns them in rank order (possibly fewer than asked).
    /// </summary>
    Task<IReadOnlyList<PlanMember>> ResizeSilos(string jobId, int count);

    /// <summary>What a job needs to decide on re-planning: which silos live, which of its silos drain, how many are free.</summary>
    Task<JobSiloView> ViewFor(string jobId);

    /// <summary>
    /// A silo saw Orleans membership reach <paramref name="version"/>; the cluster tells the running jobs. Not
    /// one-way: a call that went to an activation on a dead silo fails, and the forwarding silo retries it.
    /// </summary>
    Task MembershipChanged(long version);

    /// <summary>
    /// Reserves the free silos its replicas span (L × G each) and starts loading the deployment there (it answers while loading; watch
    /// its state). Throws when too few silos are free: a deployment is not queued like a job.
    /// </summary>
    Task<DeploymentState> Deploy(DeploymentSpec spec);

    /// <summary>
    /// The silos a deployment holds after a change: its live, undrained ones first, then free ones (only while no job
    /// waits in the queue) up to <paramref name="count"/>; none once it is undeployed.
    /// </summary>
    Task<IReadOnlyList<PlanMember>> ResizeDeployment(string name, int count);

    /// <summary>Names of the deployed models.</summary>
    [AlwaysInterleave]
    Task<IReadOnlyList<string>> ListDeployments();

    /// <summary>Unloads a deployment and frees its silos; false when no such model is deployed.</summary>
    Task<bool> Undeploy(string name);

    /// <summary>Marks a silo not assignable and tells the jobs on it to re-plan without it; returns those jobs.</summary>
    Task<IReadOnlyList<string>> Drain(string silo);

    /// <summary>
    /// Puts a drained silo back in service: queued jobs may start on it, jobs that grow and deployments short of
    /// replicas take it as they take a silo that joins. False when the silo was not drained.
    /// </summary>
    Task<bool> Undrain(string silo);
}
