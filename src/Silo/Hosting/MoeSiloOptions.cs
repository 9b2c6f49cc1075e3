namespace Orleans.MoE.Silo.Hosting;

/// <summary>
/// A silo's settings, from the "Moe" section of appsettings.json, MOE__* environment variables or --Moe:Key=value
/// on the command line (later sources win).
/// </summary>
public sealed record MoeSiloOptions
{
    public const string Section = "Moe";

    /// <summary>The silo's name in execution plans (default: silo-SILOPORT).</summary>
    public string? Name { get; init; }

    /// <summary>The machine it runs on (default: the host name); plans group ranks by node.</summary>
    public string? Node { get; init; }

    /// <summary>The device it owns: "cpu", "cuda" (set CUDA_VISIBLE_DEVICES per silo) or "auto".</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>"localhost" (in-memory membership led by the primary silo) or "postgres".</summary>
    public string Clustering { get; init; } = "localhost";

    /// <summary>Npgsql connection string for clustering and grain state when Clustering is "postgres".</summary>
    public string? Postgres { get; init; }

    /// <summary>With Clustering "postgres": apply deploy/postgres/*.sql (idempotent) before the silo starts.</summary>
    public bool ApplySchema { get; init; }

    public int SiloPort { get; init; } = 11111;
    public int GatewayPort { get; init; } = 30000;

    /// <summary>The primary silo's port for localhost clustering.</summary>
    public int PrimarySiloPort { get; init; } = 11111;

    /// <summary>HTTP port of the dashboard and the MoE view; -1 = no web server (an embedded silo).</summary>
    public int HttpPort { get; init; } = 8080;

    /// <summary>When set, /dashboard and /moe need ?token=…, a "Bearer" header or the cookie the first sets.</summary>
    public string? AuthToken { get; init; }

    public string ClusterId { get; init; } = "moe";
    public string ServiceId { get; init; } = "orleans-moe";

    /// <summary>Where training data is cached (default: MOE_CACHE or the repository's .cache).</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Seconds between heartbeats to the cluster grain.</summary>
    public double HeartbeatSeconds { get; init; } = 2;

    /// <summary>
    /// Orleans' membership probe timeout in seconds (0 = Orleans' default, 5): a silo that misses three probes is
    /// declared dead, and the jobs on it roll back and re-plan, so this bounds how long a lost silo stalls a job.
    /// </summary>
    public double ProbeTimeoutSeconds { get; init; }

    /// <summary>
    /// One rank of an <c>mpiexec</c> launch: the silo takes its rank's ports (SiloPort + rank, GatewayPort + rank,
    /// HttpPort + rank unless -1), rank 0's silo leads localhost membership, and jobs on these silos exchange
    /// tensors over MPI, plan rank = MPI rank.
    /// </summary>
    public bool Mpi { get; init; }

    /// <summary>These options for MPI rank <paramref name="rank"/> (see <see cref="Mpi"/>).</summary>
    public MoeSiloOptions ForMpiRank(int rank) => this with
    {
        Name = $"{Name ?? "mpi"}-rank-{rank:D4}",
        PrimarySiloPort = SiloPort,
        SiloPort = SiloPort + rank,
        GatewayPort = GatewayPort + rank,
        HttpPort = HttpPort < 0 ? -1 : HttpPort + rank,
    };

    public string SiloName => Name ?? $"silo-{SiloPort}";
    public string NodeName => Node ?? Environment.MachineName;
}
