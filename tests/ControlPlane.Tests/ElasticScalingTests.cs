using System.Diagnostics;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Tests;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// Jobs on a cluster that changes under them: silos join (the job grows at a chunk boundary) and die (the job
/// rolls back to its last good checkpoint and re-plans on the survivors). Each test has a cluster of its own.
/// </summary>
public class ElasticScalingTests
{
    static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    // The tolerance of the data plane's equivalence test: 1, 2 or 4 ranks train the one-process model and only the
    // order of fp32 sums differs, so a rescaled run's losses differ from one that never rescaled by rounding only.
    const double LossTolerance = 2e-4;

    [Fact]
    public async Task ATwoSiloJobGrowsToFourWhenSilosJoinThenLeavesADrainedSiloAndKeepsTheLossesOfARunThatNeverRescaled()
    {
        var config = WholeRoutingGroups(TinyConfigs.Load("tiny-pr-moe", steps: 20));
        var expected = OneProcessLosses(config, resumeFrom: null);

        await using var elastic = await ElasticCluster.StartAsync(2);
        var cluster = elastic.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        string jobId = await StartGrowingJob(elastic, config);
        var joining = Stopwatch.StartNew();
        // One at a time: with the first alone the job stays on 2 ranks (3 do not split the batch of 16), with both it grows.
        string third = await elastic.AddSiloAsync(), fourth = await elastic.AddSiloAsync();
        var joined = joining.Elapsed;
        var grown = await JobPolling.Until(elastic.Client, jobId, s => s.Plan?.Members.Count == 4 || s.Status.IsFinal(), Deadline);
        var replanned = joining.Elapsed;
        Assert.Equal(4, grown.Plan!.Members.Count);
        Assert.Contains(third, grown.Plan.Members.Select(m => m.Silo));
        Assert.Contains(fourth, grown.Plan.Members.Select(m => m.Silo));

        // Draining one of the four: 3 ranks do not split the batch either, so the job goes on with 2 at the next boundary.
        Assert.Equal([jobId], await cluster.Drain(third));
        var drained = await JobPolling.Until(elastic.Client, jobId, s => s.GenerationChanges.Count == 2 || s.Status.IsFinal(), Deadline);
        Assert.True((await cluster.GetSilos()).Single(s => s.Health.Silo == third).Draining);
        // What `moe checkpoint JOB` does: one checkpoint of every rank, at the next chunk boundary (an even step).
        string asked = await elastic.Client.GetGrain<IJobCoordinatorGrain>(jobId).Checkpoint();
        var state = await JobPolling.Until(elastic.Client, jobId, s => s.Status.IsFinal(), Deadline);

        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}\n{string.Join('\n', state.Notices)}");
        Assert.Equal(2, state.GenerationChanges.Count);
        var (change, shrink) = (state.GenerationChanges[0], state.GenerationChanges[1]);
        Assert.Equal((2, 4, 0L), (change.FromRanks, change.ToRanks, change.StepsRolledBack));
        Assert.Equal((4, 2, 0L), (shrink.FromRanks, shrink.ToRanks, shrink.StepsRolledBack));
        Assert.Contains($"silo {third} is draining", shrink.Reason);
        Assert.DoesNotContain(third, drained.Plan!.Members.Select(m => m.Silo));
        Assert.InRange(change.ResumedAtStep, 2, shrink.ResumedAtStep - 1);
        // Growing keeps every rank, so the two new ranks got their experts, the dense weights and the moments from the
        // two old ranks over the new data plane. Draining keeps only old ranks, so before the drained silo left, the
        // four ranks moved its experts (and those of the other leaving rank) to the two that stay, over theirs. No
        // checkpoint either time.
        Assert.True(change.OverDataPlane, "the job grew through a checkpoint, not over the data plane");
        Assert.True(shrink.OverDataPlane, "the job shrank through a checkpoint, not over the data plane");
        Assert.Null(change.Checkpoint);
        Assert.Null(shrink.Checkpoint);
        Assert.True(change.HandoffBytes > 0, "the joining ranks received nothing");
        Assert.True(shrink.HandoffBytes > 0, "the staying ranks received no expert of the leaving ones");
        Assert.DoesNotContain(state.Checkpoints, c => CheckpointDirectory.StepOf(c) is { } step && (step == change.ResumedAtStep || step == shrink.ResumedAtStep) && c != asked);
        Assert.Contains(asked, state.Checkpoints);
        Assert.True(CheckpointDirectory.Open(asked).Step % 2 == 0, asked);
        AssertLosses(expected, state.Losses);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"grew 2 → 4 at step {change.ResumedAtStep}: silos started in {joined.TotalSeconds:F2} s; the coordinator had the 4-rank plan stepping " +
            $"{change.SecondsUntilStepping:F2} s after it noticed (park, prepare 4 ranks, {change.HandoffBytes} bytes over the data plane in {change.HandoffSeconds:F3} s); the test saw the 4-rank plan {replanned.TotalSeconds:F2} s after asking for the first silo; " +
            $"drained 4 → 2 at step {shrink.ResumedAtStep} in {shrink.SecondsUntilStepping:F2} s ({shrink.HandoffBytes} bytes staged over the data plane in {shrink.HandoffSeconds:F3} s)");
    }

    [Fact]
    public async Task ADrainedSiloTakesNoJobUntilItIsUndrained()
    {
        await using var elastic = await ElasticCluster.StartAsync(2);
        var cluster = elastic.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        // Both silos' first heartbeats make them assignable.
        var silos = await Eventually(async () => (await cluster.GetSilos()).Select(s => s.Health.Silo).Order(StringComparer.Ordinal).ToArray(), s => s.Length == 2);
        Assert.Empty(await cluster.Drain(silos[1]));
        string jobId = await cluster.Submit(new JobSubmission
        {
            ConfigJson = TinyConfigs.Load("tiny-pr-moe", steps: 4).ToJson(),
            OutputDirectory = TinyConfigs.TempDirectory(),
            ChunkSteps = 2,
            Replicas = 2,
        });
        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
        Assert.Equal(JobStatus.Queued, (await elastic.Client.GetGrain<IJobCoordinatorGrain>(jobId).GetState()).Status);

        Assert.True(await cluster.Undrain(silos[1]));
        Assert.False(await cluster.Undrain(silos[1]));
        Assert.False((await cluster.GetSilos()).Single(s => s.Health.Silo == silos[1]).Draining);
        var state = await JobPolling.Until(elastic.Client, jobId, s => s.Status.IsFinal(), Deadline);
        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}");
        Assert.Equal(silos, state.Plan!.Members.Select(m => m.Silo).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ASiloLostWhileTheRanksPrepareAbortsThePreparationAndTheJobGoesOnWithoutIt()
    {
        var config = TinyConfigs.Load("tiny-pr-moe", steps: 4);
        await using var elastic = await ElasticCluster.StartAsync(2);
        var cluster = elastic.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        await Eventually(async () => (await cluster.GetSilos()).Count(s => !s.Draining), n => n == 2);
        // Killed as soon as the job is accepted: its plan (made right after) places rank 1 there, and rank 0 prepares
        // and waits for a peer that never comes. Not the first silo: the in-process cluster's first silo is its
        // membership's seed.
        string victim = elastic.Cluster.Silos[1].Name;
        var submitted = Stopwatch.StartNew();
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 2, Replicas = 2 });
        await elastic.KillSiloAsync(victim);
        var state = await JobPolling.Until(elastic.Client, jobId, s => s.Status.IsFinal(), Deadline);
        var finished = submitted.Elapsed;

        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}\n{string.Join('\n', state.Notices)}");
        Assert.DoesNotContain(victim, state.Plan!.Members.Select(m => m.Silo));
        Assert.Equal(4, state.Losses.Count);
        // Without the abort, rank 0 would have waited for the data-plane start timeout (5 minutes).
        Assert.True(finished < TimeSpan.FromMinutes(2), $"the job took {finished.TotalSeconds:F0} s");
        var change = Assert.Single(state.GenerationChanges);
        // The job's coordinator may have lived on the killed silo: then its next activation finds the job planning.
        Assert.True(change.Reason == $"lost silo {victim} while generation 1 prepared" || change.Reason == "the coordinator was re-activated while generation 1 prepared", change.Reason);
        Assert.Equal((2, 1, 0L), (change.FromRanks, change.ToRanks, change.StepsRolledBack));
        TestContext.Current.TestOutputHelper?.WriteLine($"job on 2 ranks, {victim} killed as it was accepted: completed on {state.Plan.Members.Count} in {finished.TotalSeconds:F1} s; {string.Join(" | ", state.Notices)}");
    }

    static async Task<T> Eventually<T>(Func<Task<T>> read, Func<T, bool> done)
    {
        var end = DateTime.UtcNow + Deadline;
        while (true)
        {
            var value = await read();
            if (done(value) || DateTime.UtcNow > end) return value;
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task AJoiningSiloLostWhileTheJobGrowsRollsTheJobBackAndEveryStepStillRunsOnce()
    {
        var tiny = WholeRoutingGroups(TinyConfigs.Load("tiny-pr-moe", steps: 12));
        var config = tiny with { Training = tiny.Training with { CheckpointInterval = 2 } };
        var expected = OneProcessLosses(config, resumeFrom: null);

        await using var elastic = await ElasticCluster.StartAsync(2);
        string jobId = await StartGrowingJob(elastic, config);
        string third = await elastic.AddSiloAsync(), fourth = await elastic.AddSiloAsync();
        // Killed as soon as the 4-rank plan exists: usually while the ranks prepare and the two old ones hand their
        // state over (the joiners block on it), else just after. Either way the job must roll back to a checkpoint:
        // the old ranks' parked runs went with the failed generation.
        await JobPolling.Until(elastic.Client, jobId, s => s.Plan?.Members.Count == 4 || s.Status.IsFinal(), Deadline);
        await elastic.KillSiloAsync(fourth);
        var state = await JobPolling.Until(elastic.Client, jobId, s => s.Status.IsFinal(), Deadline);

        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}\n{string.Join('\n', state.Notices)}");
        Assert.DoesNotContain(fourth, state.Plan!.Members.Select(m => m.Silo));
        var lost = Assert.Single(state.GenerationChanges, c => c.Reason.Contains($"lost silo {fourth}", StringComparison.Ordinal)
            || c.Reason.StartsWith("the coordinator was re-activated", StringComparison.Ordinal));
        Assert.False(lost.OverDataPlane);
        Assert.Equal(0, lost.ResumedAtStep % 2);
        // Every step exactly once, with the losses of a run that never rescaled.
        AssertLosses(expected, state.Losses);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"killed {fourth} as the job grew onto it and {third}: {string.Join(" | ", state.GenerationChanges.Select(c => $"{c.FromRanks} → {c.ToRanks} at step {c.ResumedAtStep} ({c.Reason}; rolled back {c.StepsRolledBack}; stepping {c.SecondsUntilStepping:F2} s after the coordinator noticed)"))}");
    }

    [Fact]
    public async Task KillingASiloMidRunRollsBackToTheLastCheckpointAndRunsEveryLaterStepExactlyOnce()
    {
        // 12 steps: the job cannot finish between the test seeing step 3 and the kill, even on starved cores.
        var tiny = WholeRoutingGroups(TinyConfigs.Load("tiny-pr-moe", steps: 12));
        var config = tiny with { Training = tiny.Training with { CheckpointInterval = 2 } };
        var expected = OneProcessLosses(config, resumeFrom: null);

        await using var elastic = await ElasticCluster.StartAsync(2);
        var cluster = elastic.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        string output = TinyConfigs.TempDirectory();
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = output, ChunkSteps = 3, Replicas = 2 });
        // Chunks end at steps 3, 6, 9 and checkpoints are at 2, 4, 6, 8, 10: a kill after step 3 is recorded rolls back a step
        // or more (the chunk in flight never completes: its second rank is gone).
        var running = await JobPolling.Until(elastic.Client, jobId, s => s.Status == JobStatus.Running && s.Step >= 3, Deadline);
        // Not the first silo: the in-process cluster's first silo is its membership's seed.
        string victim = running.Plan!.Members.Select(m => m.Silo).First(s => s != elastic.Cluster.Silos[0].Name);
        var killed = Stopwatch.StartNew();
        var kill = elastic.KillSiloAsync(victim);
        var resumed = await JobPolling.Until(elastic.Client, jobId, s => s.GenerationChanges.Count > 0 || s.Status.IsFinal(), Deadline);
        var recovered = killed.Elapsed;
        var state = await JobPolling.Until(elastic.Client, jobId, s => s.Status.IsFinal(), Deadline);
        await kill;

        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}\n{string.Join('\n', state.Notices)}");
        var change = Assert.Single(resumed.GenerationChanges);
        Assert.Contains($"lost silo {victim}", change.Reason);
        Assert.Equal((2, 1), (change.FromRanks, change.ToRanks));
        Assert.Equal(0, change.ResumedAtStep % 2);
        Assert.EndsWith(CheckpointDirectory.StepName(change.ResumedAtStep), change.Checkpoint);
        Assert.DoesNotContain(victim, state.Plan!.Members.Select(m => m.Silo));
        // Every step exactly once: the losses recorded after the checkpoint were forgotten and the steps ran again.
        AssertLosses(expected, state.Losses);

        // The job's final weights are those of one process resumed from the checkpoint it rolled back to: the
        // generation after the loss runs one rank, the same arithmetic as that process, so they agree to rounding.
        string reference = TinyConfigs.TempDirectory();
        OneProcessLosses(config, change.Checkpoint, reference);
        // Same rank count, device and seed streams: only thread scheduling of fp32 sums can differ.
        CheckpointAssert.SameTensors(state.Checkpoints[^1], Path.Combine(reference, "checkpoints", CheckpointDirectory.StepName(config.Training.Steps)), tolerance: 1e-5);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"killed {victim} at step ≥ {running.Step}: rolled back {change.StepsRolledBack} steps to step {change.ResumedAtStep}; the 1-rank plan was stepping " +
            $"{change.SecondsUntilStepping:F2} s after the coordinator noticed the loss and {recovered.TotalSeconds:F2} s after the kill");
    }

    /// <summary>A job on the cluster's 2 silos that grows to 4 when silos join (chunks of 2 steps), once it has run 2 steps.</summary>
    static async Task<string> StartGrowingJob(ElasticCluster elastic, JobConfig config)
    {
        string jobId = await elastic.Client.GetGrain<IClusterGrain>(IClusterGrain.Key).Submit(new JobSubmission
        {
            ConfigJson = config.ToJson(),
            OutputDirectory = TinyConfigs.TempDirectory(),
            ChunkSteps = 2,
            Replicas = 2,
            Scaling = new ScalingPolicy { OnJoin = GrowthPolicy.Grow, MaxReplicas = 4 },
        });
        await JobPolling.Until(elastic.Client, jobId, s => s.Status == JobStatus.Running && s.Step >= 2, Deadline);
        return jobId;
    }

    static JobConfig WholeRoutingGroups(JobConfig tiny) =>
        // Routing groups of 2 sequences: each rank's share of the batch of 16 is whole groups on 1, 2 or 4 ranks.
        tiny with { Moe = tiny.Moe with { RoutingGroupTokens = 256 } };

    static List<double> OneProcessLosses(JobConfig config, string? resumeFrom, string? output = null)
    {
        using var run = TrainingRun.Create(config, TinyConfigs.Options(output ?? TinyConfigs.TempDirectory()) with { ResumeFrom = resumeFrom });
        return run.Run(null, CancellationToken.None).Losses.ToList();
    }

    static void AssertLosses(IReadOnlyList<double> expected, IReadOnlyList<double> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) < LossTolerance, $"step {i + 1}: {actual[i]:F6} on the elastic cluster vs {expected[i]:F6} in one process");
    }
}
