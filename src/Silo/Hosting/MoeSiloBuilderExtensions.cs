using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Resilience;
using Orleans.MoE.Silo.Device;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>What makes an Orleans silo an MoE silo: its device, metadata, plan placement, storage and heartbeat.</summary>
public static class MoeSiloBuilderExtensions
{
    /// <summary>
    /// Adds the device executor, training and serving sessions for <paramref name="options"/>' device, publishes the silo's
    /// node, device and memory as silo metadata, registers plan placement and the resilience pipelines, and stores
    /// job records in PostgreSQL (Clustering "postgres") or in memory.
    /// </summary>
    public static ISiloBuilder AddMoeSilo(this ISiloBuilder silo, MoeSiloOptions options, string? dashboardUrl = null)
    {
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var identity = new SiloIdentity(options.SiloName, options.NodeName, options.Device, memory);
        silo.UseSiloMetadata(new Dictionary<string, string>
        {
            [SiloMetadataKeys.Silo] = identity.Name,
            [SiloMetadataKeys.Node] = identity.Node,
            [SiloMetadataKeys.Device] = identity.Device,
            [SiloMetadataKeys.Process] = $"{Environment.MachineName}:{Environment.ProcessId}",
            [SiloMetadataKeys.MpiRank] = options.Mpi ? MpiRanks.Initialise().ToString(System.Globalization.CultureInfo.InvariantCulture) : "-1",
            [SiloMetadataKeys.MemoryBytes] = memory.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        silo.AddPlacementDirector<PlanPlacementStrategy, PlanPlacementDirector>();
        if (options.ProbeTimeoutSeconds > 0)
            silo.Configure<ClusterMembershipOptions>(o => o.ProbeTimeout = TimeSpan.FromSeconds(options.ProbeTimeoutSeconds));
        if (options.Clustering == "postgres")
        {
            string connection = options.Postgres ?? throw new InvalidOperationException("Moe:Postgres (a connection string) is required for postgres clustering");
            silo.AddAdoNetGrainStorage(StorageNames.Jobs, builder => builder.Configure<Serializer>((o, serializer) =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = connection;
                // Orleans' own serializer (the [GenerateSerializer] contracts, version tolerant), not the default
                // Newtonsoft JSON, which cannot read back the job records' immutable records.
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));
        }
        else
        {
            silo.AddMemoryGrainStorage(StorageNames.Jobs);
        }
        var services = silo.Services;
        services.AddSingleton(identity);
        services.AddSingleton(_ => new DeviceExecutor(identity.Device));
        services.AddSingleton(sp => new TrainingSessions(sp.GetRequiredService<DeviceExecutor>(), identity, options.CacheDirectory ?? TrainingSessions.DefaultCache()));
        services.AddSingleton<ITrainingDevice>(sp => sp.GetRequiredService<TrainingSessions>());
        services.AddSingleton(sp => new ServingSessions(sp.GetRequiredService<DeviceExecutor>(), identity));
        services.AddSingleton<IServingDevice>(sp => sp.GetRequiredService<ServingSessions>());
        services.AddSingleton(_ => new ControlPlaneResilience());
        services.AddSingleton(new HeartbeatSettings(TimeSpan.FromSeconds(options.HeartbeatSeconds), dashboardUrl));
        services.AddHostedService<HeartbeatService>();
        services.AddHostedService<MembershipForwarder>();
        return silo;
    }
}
