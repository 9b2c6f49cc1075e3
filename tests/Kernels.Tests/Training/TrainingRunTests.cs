using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Kernels.Tests.Training;

public class TrainingRunTests
{
    [Fact]
    public void TinyPrMoeLearnsWellBelowTheUnigramBaseline()
    {
        var config = TinyJobs.Load("tiny-pr-moe", steps: 120);
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        var summary = run.Run(null, CancellationToken.None);
        Assert.Equal(120, summary.Steps);
        // A byte-level unigram model scores ≈ 3.1 nats/byte on Brown; after 120 short steps the model is ≥ 15% below it
        // (the full 800-step config reaches far lower: docs/engine.md).
        Assert.True(summary.ValLoss < 0.85 * summary.UnigramValLoss,
            $"validation loss {summary.ValLoss:F3} is not well below the unigram baseline {summary.UnigramValLoss:F3}");
        Assert.True(summary.Losses[^1] < summary.Losses[0] - 1.5, $"loss went from {summary.Losses[0]:F3} to {summary.Losses[^1]:F3}");
        Assert.True(summary.ParamsActivePerToken < summary.ParamsTotal);
    }

    [Fact]
    public void ResumingFromACheckpointReproducesTheUninterruptedRun()
    {
        var config = TinyJobs.Load("tiny-pr-moe", steps: 12) with { Moe = TinyJobs.Load("tiny-pr-moe", 12).Moe with { NoisyGatePolicy = "rsample" } };
        List<double> uninterrupted;
        using (var whole = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory())))
            uninterrupted = whole.Run(null, CancellationToken.None).Losses.ToList();

        string output = TinyJobs.TempDirectory();
        string checkpoint;
        using (var first = TrainingRun.Create(config, TinyJobs.Options(output, stopAfter: 5)))
            checkpoint = first.Run(null, CancellationToken.None).Checkpoint!;
        Assert.EndsWith("step-000005", checkpoint);
        using var second = TrainingRun.Create(config, TinyJobs.Options(output, resume: checkpoint));
        var resumed = second.Run(null, CancellationToken.None).Losses;

        Assert.Equal(7, resumed.Count);
        for (int i = 0; i < resumed.Count; i++)
            Assert.True(Math.Abs(resumed[i] - uninterrupted[5 + i]) < 1e-5, $"step {6 + i}: resumed {resumed[i]} vs uninterrupted {uninterrupted[5 + i]}");
    }

    [Fact]
    public void CheckpointHoldsOneFilePerLayerAndGlobalExpert()
    {
        var config = TinyJobs.Load("tiny-pr-moe", steps: 1);
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        string path = run.Run(null, CancellationToken.None).Checkpoint!;
        var files = CheckpointDirectory.Open(path).Files.Keys.ToHashSet();
        // tiny-pr-moe: MoE at layers 1, 3, 5 with 4, 4 and 8 experts.
        int[] layers = [1, 3, 5], counts = [4, 4, 8];
        for (int l = 0; l < layers.Length; l++)
            for (int e = 0; e < counts[l]; e++)
                Assert.Contains(ModelCheckpoint.ExpertFile(layers[l], e), files);
        Assert.Equal(16 + 3, files.Count); // experts + config, state, dense
    }

    [Fact]
    public void MicroBatchesWithMatchingRoutingGroupsGiveTheFullBatchLosses()
    {
        // Batch 8 in one pass with routing groups of 4 sequences equals batch 8 as two micro-batches of 4.
        var baseConfig = TinyJobs.Load("tiny-moe", steps: 4);
        int groupTokens = 4 * baseConfig.Model.ContextLength;
        var whole = baseConfig with
        {
            Training = baseConfig.Training with { BatchSize = 8, MicroBatchSize = 0 },
            Moe = baseConfig.Moe with { RoutingGroupTokens = groupTokens, NoisyGatePolicy = "jitter" },
        };
        var split = whole with { Training = whole.Training with { MicroBatchSize = 4 } };
        List<double> a, b;
        using (var run = TrainingRun.Create(whole, TinyJobs.Options(TinyJobs.TempDirectory())))
            a = run.Run(null, CancellationToken.None).Losses.ToList();
        using (var run = TrainingRun.Create(split, TinyJobs.Options(TinyJobs.TempDirectory())))
            b = run.Run(null, CancellationToken.None).Losses.ToList();
        for (int i = 0; i < a.Count; i++)
            Assert.True(Math.Abs(a[i] - b[i]) < 2e-5, $"step {i + 1}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void RunningInChunksGivesTheLossesAndSummaryOfOneRun()
    {
        var config = TinyJobs.Load("tiny-pr-moe", steps: 7);
        TrainingSummary whole;
        using (var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory())))
            whole = run.Run(null, CancellationToken.None);

        using var chunked = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        var steps = new List<long>();
        foreach (int size in new[] { 3, 3, 3 })
            steps.AddRange(chunked.RunSteps(size, CancellationToken.None).Select(p => p.Step!.Step));
        Assert.Equal([1, 2, 3, 4, 5, 6, 7], steps);
        Assert.Empty(chunked.RunSteps(5, CancellationToken.None));
        var summary = chunked.Finish();
        Assert.Equal(whole.Losses, summary.Losses);
        Assert.Equal(whole.ValLoss, summary.ValLoss);
        Assert.EndsWith("step-000007", summary.Checkpoint);
    }
}
