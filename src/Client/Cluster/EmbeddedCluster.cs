using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.Client.Cluster;

/// <summary>Silos started inside the console's process (moe up, or moe train when no cluster runs): one per device.</summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    readonly List<IHost> hosts;

    EmbeddedCluster(List<IHost> hosts, IReadOnlyList<MoeSiloOptions> silos)
    {
        this.hosts = hosts;
        Silos = silos;
    }

    public IReadOnlyList<MoeSiloOptions> Silos { get; }

    /// <summary>A grain client of the first silo.</summary>
    public IGrainFactory Grains => hosts[0].Services.GetRequiredService<IGrainFactory>();

    /// <summary>
    /// Starts <paramref name="silos"/> silos on <paramref name="device"/> ("cuda" with several silos: cuda:0, cuda:1, …,
    /// one GPU each). With <paramref name="web"/> they take the standard ports (silo 11111+i, gateway 30000+i, HTTP
    /// 8080+i) so other consoles find them; without, free ports and no web server (fast start).
    /// </summary>
    public static async Task<EmbeddedCluster> StartAsync(int silos, bool web, string? postgres, CancellationToken cancellation, int httpPort = 8080, string? authToken = null, string device = "cpu")
    {
        var options = new List<MoeSiloOptions>();
        int primary = web ? 11111 : FreePort();
        for (int i = 0; i < silos; i++)
        {
            options.Add(new MoeSiloOptions
            {
                Name = $"silo-{i}",
                Device = device == "cuda" && silos > 1 ? $"cuda:{i}" : device,
                Clustering = postgres is null ? "localhost" : "postgres",
                Postgres = postgres,
                SiloPort = i == 0 ? primary : web ? 11111 + i : FreePort(),
                GatewayPort = web ? ClusterAddress.DefaultGatewayPort + i : FreePort(),
                PrimarySiloPort = primary,
                HttpPort = web ? httpPort + i : -1,
                AuthToken = authToken,
                ClusterId = ClusterAddress.ClusterId,
                ServiceId = ClusterAddress.ServiceId,
            });
        }
        // The tables and Orleans queries (deploy/postgres/*.sql) are applied on every start; the scripts are idempotent.
        if (postgres is not null) await PostgresSchema.ApplyAsync(postgres, cancellation);
        var hosts = new List<IHost>();
        try
        {
            foreach (var o in options)
            {
                var host = MoeSiloHost.Build(o);
                await host.StartAsync(cancellation);
                hosts.Add(host);
            }
        }
        catch
        {
            foreach (var h in hosts) h.Dispose();
            throw;
        }
        return new EmbeddedCluster(hosts, options);
    }

    /// <summary>
    /// This process's silo of an <c>mpiexec</c> launch: rank r takes silo port 11111+r, gateway 30000+r and HTTP
    /// port <paramref name="httpPort"/>+r; rank 0's silo leads membership; jobs on these silos exchange over MPI.
    /// </summary>
    public static async Task<EmbeddedCluster> StartMpiRankAsync(CancellationToken cancellation, int httpPort = 8080, string? authToken = null)
    {
        var options = new MoeSiloOptions
        {
            Name = "mpi",
            Device = "cpu",
            Clustering = "localhost",
            SiloPort = 11111,
            GatewayPort = ClusterAddress.DefaultGatewayPort,
            HttpPort = httpPort,
            AuthToken = authToken,
            ClusterId = ClusterAddress.ClusterId,
            ServiceId = ClusterAddress.ServiceId,
            Mpi = true,
        }.ForMpiRank(MpiRanks.Initialise());
        var host = MoeSiloHost.Build(options);
        await host.StartAsync(cancellation);
        return new EmbeddedCluster([host], [options]);
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        // Secondary silos first, so the primary (which leads localhost membership) leaves last.
        for (int i = hosts.Count - 1; i >= 0; i--)
        {
            await hosts[i].StopAsync(TimeSpan.FromSeconds(10));
            hosts[i].Dispose();
        }
    }
}
