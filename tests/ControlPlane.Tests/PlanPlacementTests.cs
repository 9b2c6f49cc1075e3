using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Placement;
using Orleans.MoE.Grains.Planning;

namespace Orleans.MoE.ControlPlane.Tests;

[Collection(nameof(FourSiloCollection))]
public class PlanPlacementTests(FourSiloCluster fixture)
{
    [Fact]
    public async Task ComputeGrainsLandOnTheSiloThePlanNames()
    {
        var names = fixture.SiloNames;
        Assert.Equal(FourSiloCluster.Silos, names.Count);
        for (int rank = 0; rank < names.Count; rank++)
        {
            // Each rank on a different silo, in an order unlike the silos' own, so no default placement can pass by luck.
            string silo = names[(rank + 1) % names.Count];
            var replica = fixture.Client.GetGrain<IReplicaGrain>(PlanKey.Replica("placement", 1, rank, silo));
            Assert.Equal(silo, (await replica.GetState()).Silo);
            var shard = fixture.Client.GetGrain<IExpertShardGrain>(PlanKey.ExpertShard("placement", 1, 3, 0, 7, silo));
            Assert.Equal(silo, (await shard.GetState()).Silo);
        }
    }

    [Fact]
    public async Task PlacementFailsLoudlyWhenThePlanNamesASiloThatIsNotThere()
    {
        var replica = fixture.Client.GetGrain<IReplicaGrain>(PlanKey.Replica("placement", 1, 0, "no-such-silo"));
        var error = await Assert.ThrowsAnyAsync<Exception>(() => replica.GetState());
        Assert.Contains("no-such-silo", error.Message);
    }

    [Fact]
    public async Task TheClusterSeesEverySiloWithItsDevice()
    {
        var cluster = fixture.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        IReadOnlyList<SiloStatusReport> silos;
        // Heartbeats arrive every second; wait until all four have beaten.
        do silos = await cluster.GetSilos();
        while (silos.Count(s => s.HeartbeatAgeSeconds < 10) < FourSiloCluster.Silos && DateTime.UtcNow < deadline && await Delay());
        Assert.Equal(fixture.SiloNames.Order(), silos.Select(s => s.Health.Silo).Order());
        Assert.All(silos, s =>
        {
            Assert.True(s.Active);
            Assert.Equal("cpu", s.Health.Device);
            Assert.True(s.Health.DeviceMemoryBytes > 0);
            Assert.True(s.HeartbeatAgeSeconds < 10, $"{s.Health.Silo}: last heartbeat {s.HeartbeatAgeSeconds:F1} s ago");
        });
    }

    [Fact]
    public void ThePlanGivesEachExpertCountItsOwnExpertParallelGroupAndEveryExpertARank()
    {
        var config = TinyConfigs.Load("tiny-pr-moe", 4);
        var members = Enumerable.Range(0, 4).Select(i => new PlanMember($"s{i}", 0, "node", "cpu", "host:1")).ToArray();
        var plan = ExecutionPlanBuilder.Build(3, members, config);
        Assert.Equal(3, plan.Generation);
        Assert.Equal([0, 1, 2, 3], plan.Members.Select(m => m.Rank));
        // Both counts split over all 4 ranks: one expert-parallel group each, exchanging in shared memory.
        Assert.Equal([4, 8], plan.ExpertParallelGroups.Select(g => g.ExpertCount));
        Assert.Equal("shared-memory", plan.DataPlane);
        Assert.Equal([1, 3, 5], plan.Layers.Select(l => l.Layer));
        // 8 experts over 4 ranks: two consecutive experts per rank.
        Assert.Equal([0, 0, 1, 1, 2, 2, 3, 3], plan.Layers[2].ExpertRank);
        Assert.Equal(4, plan.Layers[2].Shards().Count());
    }

    static async Task<bool> Delay()
    {
        await Task.Delay(250);
        return true;
    }
}

/// <summary>Tests that share one four-silo cluster (it takes a few seconds to start).</summary>
[CollectionDefinition(nameof(FourSiloCollection))]
public class FourSiloCollection : ICollectionFixture<FourSiloCluster>;
