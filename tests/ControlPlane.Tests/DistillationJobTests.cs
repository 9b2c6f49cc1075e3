using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.ControlPlane.Tests;

[Collection(nameof(FourSiloCollection))]
public class DistillationJobTests(FourSiloCluster fixture)
{
    [Fact]
    public async Task ADistillationJobRunsItsKdPhaseThenItsPlainPhaseThenEvaluates()
    {
        string teacher;
        using (var run = TrainingRun.Create(TinyConfigs.Load("tiny-pr-moe-teacher", steps: 2), TinyConfigs.Options(TinyConfigs.TempDirectory())))
            teacher = run.Run(null, CancellationToken.None).Checkpoint!;
        var student = TinyConfigs.Load("tiny-pr-moe-student", steps: 5);
        student = student with { Distillation = student.Distillation! with { TeacherCheckpoint = teacher, KdStopStep = 2 } };

        var cluster = fixture.Client.GetGrain<IClusterGrain>(IClusterGrain.Key);
        string jobId = await cluster.Submit(new JobSubmission { ConfigJson = student.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 1 });
        var job = fixture.Client.GetGrain<IJobCoordinatorGrain>(jobId);
        var events = await JobWatching.UntilFinished(job, TimeSpan.FromMinutes(4));

        var state = await job.GetState();
        Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}");
        Assert.Equal([new JobPhase(PhaseKind.DistilWithKd, 2), new JobPhase(PhaseKind.DistilWithoutKd, 5), new JobPhase(PhaseKind.Evaluate, 5)], state.Phases);
        // The watch stream showed the phases in that order.
        Assert.Equal([PhaseKind.DistilWithKd, PhaseKind.DistilWithoutKd, PhaseKind.Evaluate], events.Select(e => e.Phase).OfType<PhaseKind>().Distinct());
        // Steps 1–2 ran in the KD phase, 3–5 without it.
        var phaseOfStep = events.Where(e => e.Kind == JobEventKind.Step).ToDictionary(e => e.Step!.Step, e => e.Phase);
        Assert.Equal(PhaseKind.DistilWithKd, phaseOfStep[2]);
        Assert.Equal(PhaseKind.DistilWithoutKd, phaseOfStep[3]);
        Assert.Equal(5, state.Losses.Count);
    }
}
