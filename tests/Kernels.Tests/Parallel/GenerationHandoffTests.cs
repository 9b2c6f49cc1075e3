using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Kernels.Tests.Parallel;

/// <summary>
/// A job that grows hands its state to the next generation's ranks over their data plane: every tensor the next
/// ranks hold afterwards is the previous ranks' (bit for bit), and the steps after the handoff have the losses of
/// a run that never rescaled.
/// </summary>
public class GenerationHandoffTests
{
    static JobConfig Job(int expertParallel)
    {
        var config = TinyJobs.Load("tiny-pr-moe", 8);
        return config with { Moe = config.Moe with { RoutingGroupTokens = 256 }, Parallel = new ParallelConfig { ExpertParallel = expertParallel } };
    }

    // Previous ranks (expert-parallel size: 0 = all of them) → next ranks, and which previous rank each next rank was.
    [Theory]
    [InlineData(2, 0, new[] { 0, 1, -1, -1 })] // 2 → 4 experts-parallel ranks, joiners last
    [InlineData(2, 0, new[] { -1, 1, -1, 0 })] // the same with the previous ranks renumbered
    [InlineData(2, 1, new[] { 1, -1, 0, -1 })] // every previous rank held every expert: senders are spread over both
    [InlineData(1, 0, new[] { -1, 0 })] // one process grows to two ranks
    public void StateMovesToTheNextRanksAndTheLossesAreThoseOfARunThatNeverRescaled(int previousRanks, int previousExpertParallel, int[] previousRankOf)
    {
        const int before = 4, after = 4;
        List<double> uninterrupted;
        using (var whole = TrainingRun.Create(Job(1), TinyJobs.Options(TinyJobs.TempDirectory())))
            uninterrupted = whole.RunSteps(before + after, CancellationToken.None).Select(p => p.Step!.Loss).ToList();

        string previousOutput = TinyJobs.TempDirectory();
        var previousJob = Job(previousExpertParallel);
        TrainingRun[] previous;
        ParallelLayout previousLayout;
        string saved;
        if (previousRanks == 1)
        {
            previous = [TrainingRun.Create(previousJob, TinyJobs.Options(previousOutput))];
            previous[0].RunSteps(before, CancellationToken.None);
            previousLayout = ParallelLayout.Single;
            saved = previous[0].SaveCheckpoint();
        }
        else
        {
            var built = ThreadRanks.Run(previousRanks, world =>
            {
                // The groups go with the previous generation's world; the run (model, optimiser) stays, as a parked run does on a silo.
                using var ranks = RankGroups.ForJob(world, previousJob);
                var run = TrainingRun.Create(previousJob, TinyJobs.Options(previousOutput), ranks);
                run.RunSteps(before, CancellationToken.None);
                return (Run: run, Checkpoint: run.SaveCheckpoint(), ranks.Layout);
            });
            previous = built.Select(b => b.Run).ToArray();
            previousLayout = built[0].Layout;
            saved = built[0].Checkpoint;
        }

        string nextOutput = TinyJobs.TempDirectory();
        var nextJob = Job(0);
        var results = ThreadRanks.Run(previousRankOf.Length, world =>
        {
            using var ranks = RankGroups.ForJob(world, nextJob);
            int was = previousRankOf[world.Rank];
            var handoff = new GenerationHandoff(was >= 0 ? previous[was] : null, previousLayout, previousRankOf);
            using var run = TrainingRun.Create(nextJob, TinyJobs.Options(nextOutput) with { Handoff = handoff }, ranks);
            // Written before any step: the state as it arrived.
            string arrived = run.SaveCheckpoint();
            var losses = run.RunSteps(after, CancellationToken.None).Select(p => p.Step!.Loss).ToList();
            return (Arrived: arrived, Losses: losses, Received: handoff.BytesReceived);
        });
        foreach (var run in previous) run.Dispose();

        Assert.Equal(Path.GetFileName(saved), Path.GetFileName(results[0].Arrived)); // the same step
        AssertSameTensors(results[0].Arrived, saved);
        for (int rank = 0; rank < previousRankOf.Length; rank++)
        {
            if (previousRankOf[rank] < 0) Assert.True(results[rank].Received > 0, $"rank {rank} joined yet received nothing");
            for (int i = 0; i < after; i++)
            {
                // Same tolerance and reason as the equivalence test: only the order of fp32 sums differs.
                double loss = results[rank].Losses[i], expected = uninterrupted[before + i];
                Assert.True(Math.Abs(loss - expected) < 2e-4, $"rank {rank}, step {before + i + 1}: {loss:F6} after the handoff vs {expected:F6} never rescaled");
            }
        }
    }

    [Fact]
    public void APreviousRankMissingFromTheNextGenerationIsRefusedBeforeAnythingMoves()
    {
        var error = Assert.Throws<ArgumentException>(() => new GenerationHandoff(null, new ParallelLayout(2, 2, 2, false), [0, -1, -1]));
        Assert.Contains("previous rank(s) 1 are not ranks of the next generation", error.Message);
    }

    /// <summary>Every tensor of every file equal, bit for bit: the handoff copies, it does not compute.</summary>
    static void AssertSameTensors(string actualCheckpoint, string expectedCheckpoint)
    {
        var actual = CheckpointDirectory.Open(actualCheckpoint);
        var expected = CheckpointDirectory.Open(expectedCheckpoint);
        var files = expected.Files.Keys.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(files, actual.Files.Keys.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).Order());
        foreach (var file in files)
        {
            using var a = actual.ReadTensors(file);
            using var e = expected.ReadTensors(file);
            Assert.Equal(e.Tensors.Keys.Order(), a.Tensors.Keys.Order());
            foreach (var (name, tensor) in e.Tensors)
                Assert.True(a.Tensors[name].equal(tensor).all().item<bool>(), $"{file}/{name} differs after the handoff");
        }
    }
}
