using Orleans.MoE.Silo.Hosting;
using Orleans.TestingHost;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>An Orleans in-process test cluster of four silos, each an MoE silo with its own CPU device executor.</summary>
public sealed class FourSiloCluster : IAsyncLifetime
{
    public const int Silos = 4;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IClusterClient Client => Cluster.Client;

    /// <summary>The silo names execution plans use, as the silos publish them.</summary>
    public IReadOnlyList<string> SiloNames => Cluster.Silos.Select(s => s.Name).ToArray();

    public async ValueTask InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(Silos);
        builder.ConfigureSilo((options, silo) => silo.AddMoeSilo(new MoeSiloOptions { Name = options.SiloName, Device = "cpu", HeartbeatSeconds = 1 }));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}
