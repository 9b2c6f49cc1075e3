using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Silo.Hosting;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// An in-process cluster of its own for one test, which adds and kills silos (the shared four-silo cluster must not
/// change under other tests). Job records live in storage that outlives killed silos, and membership probes time
/// out after a second, so a silo that stops answering is declared dead in seconds, not after three 5-second probes.
/// </summary>
internal sealed class ElasticCluster : IAsyncDisposable
{
    readonly ConcurrentDictionary<(string, GrainId), (object State, long Version)> records = new();

    ElasticCluster(InProcessTestCluster cluster) => Cluster = cluster;

    public InProcessTestCluster Cluster { get; }

    public IClusterClient Client => Cluster.Client;

    public static async Task<ElasticCluster> StartAsync(int silos)
    {
        var builder = new InProcessTestClusterBuilder((short)silos);
        ElasticCluster? self = null;
        builder.ConfigureSilo((options, silo) =>
        {
            silo.AddMoeSilo(new MoeSiloOptions { Name = options.SiloName, Device = "cpu", HeartbeatSeconds = 1, ProbeTimeoutSeconds = 1 });
            // Registered after the MoE silo's memory storage, so this one is what the "moe" name resolves to.
            silo.Services.AddKeyedSingleton<IGrainStorage>(StorageNames.Jobs, (sp, _) => new ProcessWideGrainStorage(self!.records, sp.GetRequiredService<DeepCopier>()));
        });
        self = new ElasticCluster(builder.Build());
        await self.Cluster.DeployAsync();
        return self;
    }

    /// <summary>Starts one more silo; returns its name (the name plans use).</summary>
    public async Task<string> AddSiloAsync() => (await Cluster.StartAdditionalSiloAsync()).Name;

    /// <summary>Stops a silo without any shutdown (no goodbye to membership): the others find out by probing.</summary>
    public Task KillSiloAsync(string name) => Cluster.KillSiloAsync(Cluster.Silos.Single(s => s.Name == name));

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}
