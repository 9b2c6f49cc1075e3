using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Silo.Hosting;
using TorchSharp;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// Silo hosts with web servers on free loopback ports, and a tiny PR-MoE checkpoint (trained a few steps on the Brown
/// corpus) deployed on them as "tiny", one replica a silo, with a small batch and queue so the bound is easy to reach.
/// </summary>
public class ServingFixture : IAsyncLifetime
{
    public const string Model = "tiny";
    public const int MaxBatch = 4;
    public const int QueueLimit = 4;

    readonly List<IHost> hosts = [];
    readonly int silos;
    readonly int tensorSlicing;
    readonly int expertParallel;

    public ServingFixture() : this(1) { }

    /// <param name="silos">Silos to start; the deployment takes all of them, in replicas of L × G.</param>
    protected ServingFixture(int silos, int tensorSlicing = 1, int expertParallel = 1)
    {
        this.silos = silos;
        this.tensorSlicing = tensorSlicing;
        this.expertParallel = expertParallel;
    }

    public string BaseUrl { get; private set; } = "";
    public string Checkpoint { get; private set; } = "";
    public IGrainFactory Grains => hosts[0].Services.GetRequiredService<IGrainFactory>();

    public async ValueTask InitializeAsync()
    {
        Checkpoint = TinyConfigs.ServingCheckpoint.Value;

        int primary = 0;
        for (int i = 0; i < silos; i++)
        {
            // A free port can be taken by another test's silo before this one binds it: then try other ports.
            for (int attempt = 1; ; attempt++)
            {
                int http = FreePort(), port = FreePort();
                var options = new MoeSiloOptions { Name = $"serving-silo-{i}", Device = "cpu", SiloPort = port, PrimarySiloPort = i == 0 ? port : primary, GatewayPort = FreePort(), HttpPort = http, HeartbeatSeconds = 1 };
                var host = MoeSiloHost.Build(options);
                try
                {
                    await host.StartAsync();
                }
                catch (Exception e) when (attempt < 5 && e is IOException or InvalidOperationException)
                {
                    host.Dispose();
                    continue;
                }
                hosts.Add(host);
                if (i == 0) (primary, BaseUrl) = (port, $"http://127.0.0.1:{http}");
                break;
            }
        }

        var spec = new DeploymentSpec
        {
            Name = Model,
            Checkpoint = Checkpoint,
            Replicas = silos / (tensorSlicing * expertParallel),
            TensorSlicing = tensorSlicing,
            ExpertParallel = expertParallel,
            MaxBatch = MaxBatch,
            QueueLimit = QueueLimit,
        };
        await Deployments.DeployWhenSilosAreReady(Grains, spec, TimeSpan.FromMinutes(1));
        var deployment = Grains.GetGrain<IDeploymentGrain>(Model);
        DeploymentState state;
        while ((state = await deployment.GetState()).Status == DeploymentStatus.Loading) await Task.Delay(100);
        if (state.Status != DeploymentStatus.Ready) throw new InvalidOperationException($"deployment {state.Status}: {state.Error}");
    }

    /// <summary>What one request gives when run alone in this process, on the checkpoint the silo serves.</summary>
    public string Alone(string prompt, SamplingOptions options)
    {
        lock (this)
        {
            if (local is null)
            {
                var saved = ModelCheckpoint.Open(Checkpoint);
                local = new TextGenerator(saved.LoadModel(torch.CPU), saved.Tokenizer, torch.CPU);
            }
            return string.Concat(local.Generate(prompt, options).Select(e => e.Text));
        }
    }

    TextGenerator? local;

    public async Task<ReplicaLoad> Load() => (await Grains.GetGrain<IDeploymentGrain>(Model).GetState()).Loads.Single();

    public async ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        // Unload first, while every silo is up: rank 0 then ends its followers' loops. A follower whose silo stops
        // before rank 0 waits out its grace period and aborts, which on a loaded CI machine outlasted a silo's stop
        // timeout and failed the fixture's cleanup.
        if (hosts.Count > 0) await Grains.GetGrain<IDeploymentGrain>(Model).Stop();
        foreach (var host in Enumerable.Reverse(hosts))
        {
            await host.StopAsync(TimeSpan.FromSeconds(30));
            host.Dispose();
        }
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Two silos, a replica on each.</summary>
public sealed class TwoReplicaServingFixture() : ServingFixture(silos: 2);

/// <summary>Four silos of one process forming one replica: tensor slicing 2 × expert parallelism 2, over shared memory.</summary>
public sealed class SlicedServingFixture() : ServingFixture(silos: 4, tensorSlicing: 2, expertParallel: 2);
