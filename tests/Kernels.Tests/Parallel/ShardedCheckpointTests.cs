using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Kernels.Tests.Parallel;

/// <summary>
/// A checkpoint written by 4 expert-parallel ranks holds one file per (layer, global expert), so it loads into
/// any layout: resumed on 2 ranks or on one process, the next steps' losses are the uninterrupted run's.
/// </summary>
public class ShardedCheckpointTests
{
    static JobConfig Job(int expertParallel) => TinyJobs.ExpertParallel(9, expertParallel);

    [Fact]
    public void CheckpointOfFourExpertParallelRanksResumesOnTwoRanksAndOnOneProcess()
    {
        List<double> uninterrupted;
        using (var whole = TrainingRun.Create(Job(1), TinyJobs.Options(TinyJobs.TempDirectory())))
            uninterrupted = whole.RunSteps(9, CancellationToken.None).Select(p => p.Step!.Loss).ToList();

        string output = TinyJobs.TempDirectory();
        var written = ThreadRanks.Run(4, world =>
        {
            using var ranks = RankGroups.ForJob(world, Job(4));
            using var run = TrainingRun.Create(Job(4), TinyJobs.Options(output), ranks);
            run.RunSteps(6, CancellationToken.None);
            return run.SaveCheckpoint();
        });
        Assert.All(written, path => Assert.Equal(written[0], path));
        var files = CheckpointDirectory.Open(written[0]).Files;
        Assert.Equal(16 + 3, files.Count); // 4 + 4 + 8 experts, config, state, dense: every expert once, from its first holder

        var onTwo = ThreadRanks.Run(2, world =>
        {
            using var ranks = RankGroups.ForJob(world, Job(2));
            using var run = TrainingRun.Create(Job(2), TinyJobs.Options(TinyJobs.TempDirectory(), resume: written[0]), ranks);
            return run.RunSteps(3, CancellationToken.None).Select(p => p.Step!.Loss).ToList();
        });
        List<double> onOne;
        using (var run = TrainingRun.Create(Job(1), TinyJobs.Options(TinyJobs.TempDirectory(), resume: written[0])))
            onOne = run.RunSteps(3, CancellationToken.None).Select(p => p.Step!.Loss).ToList();

        for (int i = 0; i < 3; i++)
        {
            // Same tolerance and reason as the equivalence test: only the order of fp32 sums differs.
            Assert.True(Math.Abs(onOne[i] - uninterrupted[6 + i]) < 2e-4, $"one process, step {7 + i}: {onOne[i]:F6} vs {uninterrupted[6 + i]:F6}");
            Assert.All(onTwo, losses => Assert.True(Math.Abs(losses[i] - uninterrupted[6 + i]) < 2e-4, $"two ranks, step {7 + i}: {losses[i]:F6} vs {uninterrupted[6 + i]:F6}"));
        }
    }
}
