using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.ControlPlane.Tests;

[Collection(nameof(FourSiloCollection))]
public class JobCoordinatorTests(FourSiloCluster fixture)
{
    static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task ATinyPrMoeJobThroughTheCoordinatorHasTheLossesOfOneProcess()
    {
        var config = TinyConfigs.Load("tiny-pr-moe", steps: 7);
        List<double> expected;
        using (var run = TrainingRun.Create(config, TinyConfigs.Options(TinyConfigs.TempDirectory())))
            expected = run.Run(null, CancellationToken.None).Losses.ToList();

        var cluster = fixture.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        // Chunks of 3 steps: the job is driven by three BeginSteps/StepsCompleted rounds, not one call.
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 3 });
        var job = fixture.Client.GetGrain<IJobCoordinatorGrain>(jobId);
        var events = await JobWatching.UntilFinished(job, Deadline);

        var state = await job.GetState();
        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}");
        // The watch stream carried every step, in order, and the phases in order.
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), events.Where(e => e.Kind == JobEventKind.Step).Select(e => e.Step!.Step));
        var statuses = events.Where(e => e.Kind == JobEventKind.Status).Select(e => e.Status).Distinct().ToArray();
        Assert.Equal([JobStatus.Queued, JobStatus.Planning, JobStatus.Running, JobStatus.Evaluating, JobStatus.Completed], statuses);
        Assert.Equal(expected, state.Losses);
        Assert.NotNull(events[^1].SummaryJson);
        Assert.Contains("\"val_loss\"", events[^1].SummaryJson);
        Assert.Single(state.Plan!.Members);
        Assert.Equal(state.Plan.Members[0].Silo, state.LastStep!.Silo);
        Assert.True(Directory.Exists(state.Checkpoints[^1]));
    }

    [Fact]
    public async Task AJobOnAllFourSilosSpreadsItsExpertsAndHasTheLossesOfOneProcess()
    {
        var tiny = TinyConfigs.Load("tiny-pr-moe", steps: 8);
        // Routing groups of 2 sequences, so each rank's 4 sequences are whole groups, as in one process.
        var config = tiny with { Moe = tiny.Moe with { RoutingGroupTokens = 256 } };
        List<double> expected;
        using (var run = TrainingRun.Create(config, TinyConfigs.Options(TinyConfigs.TempDirectory())))
            expected = run.Run(null, CancellationToken.None).Losses.ToList();

        var cluster = fixture.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 3, Replicas = FourSiloCluster.Silos });
        var job = fixture.Client.GetGrain<IJobCoordinatorGrain>(jobId);
        await JobWatching.UntilFinished(job, Deadline);

        var state = await job.GetState();
        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}");
        var plan = state.Plan!;
        Assert.Equal("shared-memory", plan.DataPlane);
        Assert.Equal(fixture.SiloNames.Order(), plan.Members.Select(m => m.Silo).Order());
        // 8 experts over 4 ranks: two per rank, each on its own silo.
        Assert.Equal([0, 0, 1, 1, 2, 2, 3, 3], plan.Layers[2].ExpertRank);
        Assert.Equal(expected.Count, state.Losses.Count);
        // The tolerance of the data plane's equivalence test: only the order of fp32 sums differs.
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(state.Losses[i] - expected[i]) < 2e-4, $"step {i + 1}: {state.Losses[i]:F6} on 4 silos vs {expected[i]:F6} in one process");
        var files = Orleans.MoE.Kernels.Checkpoints.CheckpointDirectory.Open(state.Checkpoints[^1]).Files;
        Assert.Equal(16 + 3, files.Count);
    }

    [Fact]
    public async Task CancelStopsTheJobAndLeavesACheckpoint()
    {
        var config = TinyConfigs.Load("tiny-pr-moe", steps: 400);
        var cluster = fixture.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 2 });
        var job = fixture.Client.GetGrain<IJobCoordinatorGrain>(jobId);
        bool cancelled = false;
        await JobWatching.UntilFinished(job, Deadline, async e =>
        {
            if (!cancelled && e.Step is { Step: >= 3 })
            {
                cancelled = true;
                await job.Cancel();
            }
        });
        var state = await job.GetState();
        Assert.Equal(JobStatus.Cancelled, state.Status);
        Assert.InRange(state.Step, 3, 20);
        string checkpoint = Assert.Single(state.Checkpoints);
        Assert.True(Directory.Exists(checkpoint), checkpoint);
        Assert.EndsWith($"step-{state.Step:D6}", checkpoint);
        // The silos are free again for the next job.
        var silos = await cluster.GetSilos();
        Assert.DoesNotContain(silos, s => s.RunningJob == jobId);
    }

    [Fact]
    public async Task AnUnknownJobIdHasNoRecord()
    {
        var state = await fixture.Client.GetGrain<IJobCoordinatorGrain>("no-such-job").GetState();
        Assert.Equal(JobStatus.Unknown, state.Status);
    }
}
