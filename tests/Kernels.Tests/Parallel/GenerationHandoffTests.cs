using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Tests;

namespace Orleans.MoE.Kernels.Tests.Parallel;

/// <summary>
/// A job that grows hands its state to the next generation's ranks over their data plane, and one that shrinks stages
/// it over the previous generation's before the leaving ranks go: every tensor the next ranks hold afterwards is the
/// previous ranks' (bit for bit), and the steps after the change have the losses of a run that never rescaled.
/// </summary>
public class GenerationHandoffTests
{
    static JobConfig Job(int expertParallel) => TinyJobs.ExpertParallel(8, expertParallel);

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
        CheckpointAssert.SameTensors(results[0].Arrived, saved, tolerance: 0); // the handoff copies, it does not compute
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

    // A job on 4 expert-parallel ranks shrinks (a drained silo): which next rank each previous rank becomes (−1: it leaves).
    [Theory]
    [InlineData(0, new[] { 1, -1, 0, -1 })] // to 2 ranks, renumbered; ranks 1 and 3 send their experts before they leave
    [InlineData(0, new[] { -1, -1, 0, -1 })] // to one process: it gathers every expert
    [InlineData(1, new[] { 0, 1, -1, -1 })] // to 2 ranks that each hold every expert (expert-data-parallel copies)
    public void StateStagedBeforeAShrinkIsWhatTheNextRanksTrainOn(int nextExpertParallel, int[] nextRankOf)
    {
        const int before = 4, after = 4, previousRanks = 4;
        List<double> uninterrupted;
        using (var whole = TrainingRun.Create(Job(1), TinyJobs.Options(TinyJobs.TempDirectory())))
            uninterrupted = whole.RunSteps(before + after, CancellationToken.None).Select(p => p.Step!.Loss).ToList();

        var nextJob = Job(nextExpertParallel);
        int nextRanks = nextRankOf.Count(r => r >= 0);
        var nextLayout = nextRanks == 1 ? ParallelLayout.Single : ParallelLayout.For(nextJob.Parallel, nextRanks);
        string previousOutput = TinyJobs.TempDirectory();
        var previousJob = Job(0);
        var staged = ThreadRanks.Run(previousRanks, world =>
        {
            using var ranks = RankGroups.ForJob(world, previousJob);
            var run = TrainingRun.Create(previousJob, TinyJobs.Options(previousOutput), ranks);
            run.RunSteps(before, CancellationToken.None);
            string saved = run.SaveCheckpoint();
            var kept = StagedHandoff.Stage(run, ranks, nextLayout, nextRankOf);
            if (kept is null) run.Dispose();
            return (Run: kept is null ? null : run, Staged: kept, Checkpoint: saved);
        });
        var byNextRank = Enumerable.Range(0, nextRanks).Select(n => staged[Array.IndexOf(nextRankOf, n)]).ToArray();

        string nextOutput = TinyJobs.TempDirectory();
        (string Arrived, List<double> Losses) Train(RankGroups? ranks)
        {
            var mine = byNextRank[ranks?.Rank ?? 0];
            using var run = TrainingRun.Create(nextJob, TinyJobs.Options(nextOutput) with { Handoff = mine.Staged }, ranks);
            string arrived = run.SaveCheckpoint();
            return (arrived, run.RunSteps(after, CancellationToken.None).Select(p => p.Step!.Loss).ToList());
        }
        var results = nextRanks == 1
            ? [Train(null)]
            : ThreadRanks.Run(nextRanks, world =>
            {
                using var ranks = RankGroups.ForJob(world, nextJob);
                return Train(ranks);
            });
        foreach (var s in staged)
        {
            s.Staged?.Dispose();
            s.Run?.Dispose();
        }

        Assert.Equal(Path.GetFileName(staged[0].Checkpoint), Path.GetFileName(results[0].Arrived));
        CheckpointAssert.SameTensors(results[0].Arrived, staged[0].Checkpoint, tolerance: 0);
        Assert.True(byNextRank.Sum(s => s.Staged!.BytesReceived) > 0, "nothing moved though ranks left");
        for (int rank = 0; rank < nextRanks; rank++)
            for (int i = 0; i < after; i++)
            {
                double loss = results[rank].Losses[i], expected = uninterrupted[before + i];
                Assert.True(Math.Abs(loss - expected) < 2e-4, $"rank {rank}, step {before + i + 1}: {loss:F6} after the shrink vs {expected:F6} never rescaled");
            }
    }

    [Fact]
    public void APreviousRankMissingFromTheNextGenerationIsRefusedBeforeAnythingMoves()
    {
        var error = Assert.Throws<ArgumentException>(() => new GenerationHandoff(null, new ParallelLayout(2, 2, 2, false), [0, -1, -1]));
        Assert.Contains("previous rank(s) 1 are not ranks of the next generation", error.Message);
    }
}
