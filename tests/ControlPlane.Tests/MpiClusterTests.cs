using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Silo.Hosting;
using Orleans.Runtime;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// The data plane over MPI: four silo processes started by one <c>mpiexec.mpich -n 4</c> (each rank a silo, MPI as
/// the tensor exchange), jobs submitted through Orleans train the one-process model, with the flat and the
/// hierarchical (2 nodes × 2) all-to-all.
/// </summary>
public class MpiClusterTests
{
    const int Ranks = 4;
    const int Steps = 20;
    static readonly TimeSpan JoinDeadline = TimeSpan.FromSeconds(150);
    static readonly TimeSpan JobDeadline = TimeSpan.FromMinutes(6);

    static JobConfig Job(ParallelConfig parallel)
    {
        var tiny = TinyConfigs.Load("tiny-pr-moe", Steps);
        // As in the shared-memory equivalence test: whole routing groups per rank, a learning rate without the
        // shortened warm-up's spike.
        return tiny with
        {
            Moe = tiny.Moe with { RoutingGroupTokens = 256 },
            Training = tiny.Training with { LearningRate = 1e-3, MinLearningRate = 1e-4 },
            Parallel = parallel,
        };
    }

    [Fact]
    public async Task FourMpiRankSilosTrainTheOneProcessModelFlatAndHierarchical()
    {
        var cancellation = TestContext.Current.CancellationToken;
        int[] ports = PostgresServer.FreePorts(1);
        int siloBase = ports[0] % 20000 + 20000, gatewayBase = siloBase + 100;
        using var silos = SiloProcess.StartUnderMpiexec("mpi", Ranks, new Dictionary<string, string>
        {
            ["Device"] = "cpu",
            ["Clustering"] = "localhost",
            ["SiloPort"] = siloBase.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["GatewayPort"] = gatewayBase.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["HttpPort"] = "-1",
            ["HeartbeatSeconds"] = "1",
            ["CacheDirectory"] = CacheDirectory.Default(),
        });
        if (silos is null) Assert.Skip("MPICH is not installed: apt-get install mpich (.ci/run does)");

        await using var client = await Connect(gatewayBase, silos, cancellation);
        // mpiexec's ranks name their silos mpi-rank-0000, mpi-rank-0001, …
        var names = Enumerable.Range(0, Ranks).Select(r => $"mpi-rank-{r:D4}").ToArray();
        await client.WaitForSilosAsync(names, JoinDeadline, () => silos.HasExited, () => silos.OutputTail(60), cancellation);

        foreach (var (parallel, layout) in new[]
        {
            (new ParallelConfig { ExpertParallel = 4 }, "flat"),
            (new ParallelConfig { ExpertParallel = 4, HierarchicalAllToAll = true, NodeSize = 2 }, "hierarchical 2 × 2"),
        })
        {
            var config = Job(parallel);
            List<double> expected;
            using (var run = TrainingRun.Create(config, TinyConfigs.Options(TinyConfigs.TempDirectory())))
                expected = run.RunSteps(Steps, CancellationToken.None).Select(p => p.Step!.Loss).ToList();

            var cluster = client.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
            string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), Replicas = Ranks });
            var job = client.Grains.GetGrain<IJobCoordinatorGrain>(jobId);
            await JobWatching.UntilFinished(job, JobDeadline);
            var state = await job.GetState();
            Assert.True(state.Status == JobStatus.Completed, $"{layout}: job ended {state.Status}: {state.Error}\n{silos.OutputTail()}");
            Assert.Equal("mpi", state.Plan!.DataPlane);
            Assert.Equal(Enumerable.Range(0, Ranks), state.Plan.Members.Select(m => m.MpiRank));
            // The tolerance of the shared-memory equivalence test (ParallelTrainingEquivalenceTests), for the same reason.
            for (int i = 0; i < Steps; i++)
                Assert.True(Math.Abs(state.Losses[i] - expected[i]) < 2e-4, $"{layout}, step {i + 1}: {state.Losses[i]:F6} over MPI vs {expected[i]:F6} in one process");
        }
    }

    static Task<ClientHost> Connect(int gatewayBase, SiloProcess silos, CancellationToken cancellation)
    {
        var defaults = new MoeSiloOptions();
        return ClientHost.ConnectAsync(client => client.UseLocalhostClustering(Enumerable.Range(gatewayBase, Ranks).ToArray(), defaults.ServiceId, defaults.ClusterId),
            JoinDeadline, () => silos.HasExited, () => silos.OutputTail(), cancellation);
    }
}
