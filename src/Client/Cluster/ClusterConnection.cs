using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;

namespace Orleans.MoE.Client.Cluster;

/// <summary>A connection to a running cluster through an Orleans client, or to an embedded one in this process.</summary>
public sealed class ClusterConnection : IAsyncDisposable
{
    readonly IHost? host;
    readonly EmbeddedCluster? embedded;

    ClusterConnection(IGrainFactory grains, IHost? host, EmbeddedCluster? embedded)
    {
        Grains = grains;
        this.host = host;
        this.embedded = embedded;
    }

    public IGrainFactory Grains { get; }

    /// <summary>True when the cluster lives in this process and ends with it.</summary>
    public bool IsEmbedded => embedded is not null;

    /// <summary>Silos started in this process (0 when connected to a running cluster).</summary>
    public int EmbeddedSilos => embedded?.Silos.Count ?? 0;

    /// <summary>Connects to the cluster at <paramref name="address"/>, or throws <see cref="ClusterUnreachableException"/>.</summary>
    public static async Task<ClusterConnection> ConnectAsync(ClusterAddress address, CancellationToken cancellation = default)
    {
        // A closed port answers in microseconds; an Orleans client would retry for many seconds before saying so.
        if (address.Postgres is null && !await GatewayAnswers(address.GatewayPort))
            throw new ClusterUnreachableException($"no cluster answers at localhost:{address.GatewayPort}; start one with `moe up` (or pass --gateway PORT / --postgres CONN)");
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            if (address.Postgres is { } connection)
            {
                client.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = connection;
                });
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = ClusterAddress.ClusterId;
                    o.ServiceId = ClusterAddress.ServiceId;
                });
            }
            else
            {
                client.UseLocalhostClustering(address.GatewayPort, ClusterAddress.ServiceId, ClusterAddress.ClusterId);
            }
        });
        var host = builder.Build();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(TimeSpan.FromSeconds(20));
            await host.StartAsync(timeout.Token);
        }
        catch (Exception e) when (e is not ClusterUnreachableException)
        {
            host.Dispose();
            throw new ClusterUnreachableException($"cannot connect to the cluster at {address}: {e.Message}", e);
        }
        return new ClusterConnection(host.Services.GetRequiredService<IClusterClient>(), host, null);
    }

    /// <summary>
    /// Connects to the cluster at the default gateway when one runs, else starts <paramref name="silos"/> silos in this
    /// process on <paramref name="device"/> (CPU silos exchange tensors through shared memory, GPU silos through NCCL).
    /// </summary>
    public static async Task<ClusterConnection> ConnectOrEmbedAsync(ClusterAddress address, int silos, CancellationToken cancellation = default, string? device = null)
    {
        if (address.Postgres is not null || await GatewayAnswers(address.GatewayPort)) return await ConnectAsync(address, cancellation);
        var cluster = await EmbeddedCluster.StartAsync(silos: Math.Max(1, silos), web: false, postgres: null, cancellation, device: device ?? "cpu");
        return new ClusterConnection(cluster.Grains, null, cluster);
    }

    static async Task<bool> GatewayAnswers(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (host is not null)
        {
            await host.StopAsync(TimeSpan.FromSeconds(5));
            host.Dispose();
        }
        if (embedded is not null) await embedded.DisposeAsync();
    }
}
