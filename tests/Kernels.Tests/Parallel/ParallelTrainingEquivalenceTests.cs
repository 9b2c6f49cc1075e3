using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Kernels.Tests.Parallel;

/// <summary>
/// The data plane's first duty: a job spread over ranks trains the model one process would. A tiny PR-MoE (4, 4
/// and 8 experts, RTS on) is trained for 20 steps by one process and by 4 ranks in several layouts with the same
/// seed and global batch; the per-step losses must agree.
/// Tolerance: 2e-4 nats absolute. The ranks compute the same arithmetic in a different order (each rank sums its
/// slice's gradients, the all-reduce adds the four partial sums; expert GEMMs run on differently sized batches),
/// so fp32 rounding differs at ~1e-7 relative per operation and AdamW carries it through 20 steps; measured
/// differences are below 1e-5. A wrong layout (a token sent to the wrong expert, a gradient summed twice or
/// missed, a group with the wrong random stream) moves the loss by 1e-2 or more within a few steps.
/// </summary>
public class ParallelTrainingEquivalenceTests
{
    const int Steps = 20;
    const double Tolerance = 2e-4;

    static JobConfig Job(ParallelConfig parallel, bool dropTokens)
    {
        var config = TinyJobs.Load("tiny-pr-moe", Steps);
        // Routing groups of 2 sequences: each rank's 4 sequences are whole groups, as they are in one process.
        // A third of the config's learning rate: at full rate the shortened warm-up gives a loss spike around step
        // 10, where any difference (even fp32 rounding) is amplified 1000-fold for a step.
        return config with
        {
            Moe = config.Moe with { RoutingGroupTokens = 256, DropTokens = dropTokens },
            Training = config.Training with { LearningRate = 1e-3, MinLearningRate = 1e-4 },
            Parallel = parallel,
        };
    }

    static IReadOnlyList<double> OneProcess(JobConfig config)
    {
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        return run.RunSteps(Steps, CancellationToken.None).Select(p => p.Step!.Loss).ToList();
    }

    static IReadOnlyList<double>[] FourRanks(JobConfig config) => ThreadRanks.Run(4, world =>
    {
        using var ranks = RankGroups.ForJob(world, config);
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()), ranks);
        return (IReadOnlyList<double>)run.RunSteps(Steps, CancellationToken.None).Select(p => p.Step!.Loss).ToList();
    }, TimeSpan.FromMinutes(5));

    public static TheoryData<string, int, bool, int, bool> Layouts => new()
    {
        { "expert parallel 4 (every rank a data-parallel replica of the dense part)", 4, false, 0, true },
        { "expert parallel 2 × expert-data parallel 2", 2, false, 0, true },
        { "expert parallel 4, hierarchical all-to-all over 2 nodes × 2", 4, true, 2, true },
        { "dropless, expert parallel 4 (chunks of different sizes)", 4, false, 0, false },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void FourRanksTrainTheOneProcessModel(string layout, int expertParallel, bool hierarchical, int nodeSize, bool dropTokens)
    {
        var config = Job(new ParallelConfig { ExpertParallel = expertParallel, HierarchicalAllToAll = hierarchical, NodeSize = nodeSize }, dropTokens);
        var reference = OneProcess(config);
        var ranks = FourRanks(config);
        Assert.All(ranks, losses => Assert.Equal(Steps, losses.Count));
        var worst = ranks.SelectMany((losses, rank) => losses.Select((loss, step) => (Rank: rank, Step: step + 1, Loss: loss, Gap: Math.Abs(loss - reference[step]))))
            .MaxBy(d => d.Gap);
        Assert.True(worst.Gap < Tolerance,
            $"{layout}: rank {worst.Rank} step {worst.Step}: {worst.Loss:F7} vs one process {reference[worst.Step - 1]:F7} (gap {worst.Gap:E2})");
        Assert.True(reference[^1] < reference[0] - 0.5, "the model learns in 20 steps, so equal losses mean equal training");
    }
}
