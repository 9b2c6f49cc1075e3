using System.Diagnostics;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>A deployment on an in-process cluster that gains and loses silos (issue #8's serving half).</summary>
public class ServingElasticTests
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    static async Task<DeploymentState> Until(IDeploymentGrain deployment, Func<DeploymentState, bool> done, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var state = await deployment.GetState();
            if (done(state)) return state;
            Assert.True(clock.Elapsed < Patience, $"{what}: still {state.Status} with replicas [{string.Join(", ", state.Replicas)}] on silos [{string.Join(", ", state.Silos)}] ({state.Error})");
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }

    static async Task<string> Complete(IClusterClient client, string prompt)
    {
        var pieces = new List<CompletionChunk>();
        await foreach (var chunk in client.GetGrain<IInferenceRouterGrain>("tiny").Complete(new CompletionRequest { Prompt = prompt, MaxTokens = 8, Temperature = 0 }, TestContext.Current.CancellationToken))
            pieces.Add(chunk);
        Assert.NotNull(pieces[^1].FinishReason);
        return string.Concat(pieces.Select(p => p.Text));
    }

    [Fact]
    public async Task ADeploymentGrowsOntoNewSilosAndReplacesALostReplica()
    {
        await using var cluster = await ElasticCluster.StartAsync(2);
        var grains = cluster.Client;
        var spec = new DeploymentSpec { Name = "tiny", Checkpoint = TinyConfigs.ServingCheckpoint.Value, Replicas = 2, MaxReplicas = 3 };
        await Deployments.DeployWhenSilosAreReady(grains, spec, Patience);
        var deployment = grains.GetGrain<IDeploymentGrain>("tiny");
        await Until(deployment, s => s.Replicas.Count == 2, "two replicas on two silos");
        string expected = await Complete(grains, "The jury");

        // A third silo joins: the deployment grows onto it.
        string third = await cluster.AddSiloAsync();
        var grown = await Until(deployment, s => s.Replicas.Count == 3, "growing onto the new silo");
        Assert.Contains(grown.Replicas, key => key.EndsWith("@" + third, StringComparison.Ordinal));

        // One replica's silo dies: requests keep being served (by the others), and the replica is dropped.
        string lost = Orleans.MoE.Grains.Placement.PlanKey.SiloOf(grown.Replicas[^1])!;
        await cluster.KillSiloAsync(lost);
        for (int i = 0; i < 5; i++) Assert.Equal(expected, await Complete(grains, "The jury"));
        await Until(deployment, s => s.Replicas.Count == 2 && s.Replicas.All(k => !k.EndsWith("@" + lost, StringComparison.Ordinal)), "dropping the lost replica");

        // A replacement silo joins: the deployment is back to three replicas.
        string replacement = await cluster.AddSiloAsync();
        var replaced = await Until(deployment, s => s.Replicas.Count == 3, "replacing the lost replica");
        Assert.Contains(replaced.Replicas, key => key.EndsWith("@" + replacement, StringComparison.Ordinal));
        Assert.Equal(expected, await Complete(grains, "The jury"));
    }
}
