using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Distillation;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Distillation;

public class KnowledgeDistillationTests
{
    [Fact]
    public void KdLossMatchesTheHandWorkedValue()
    {
        // Teacher logits [ln 3, 0] → p = [0.75, 0.25]; student [0, 0] → q = [0.5, 0.5].
        var teacher = torch.tensor(new float[] { MathF.Log(3), 0 }).view(1, 1, 2);
        var student = torch.zeros(1, 1, 2);
        // T = 1: KL = 0.75·ln(0.75/0.5) + 0.25·ln(0.25/0.5) = 0.130812.
        Assert.Equal(0.130812, KnowledgeDistillationLoss.Compute(student, teacher, 1.0).item<float>(), 5);
        // T = 2: p = softmax([ln3/2, 0]) = [0.633975, 0.366025]; KL = 0.633975·ln(1.267949) + 0.366025·ln(0.732051)
        // = 0.036341; × T² = 0.145363.
        Assert.Equal(0.145363, KnowledgeDistillationLoss.Compute(student, teacher, 2.0).item<float>(), 5);
        // Identical distributions cost nothing.
        Assert.Equal(0.0, KnowledgeDistillationLoss.Compute(teacher, teacher, 1.0).item<float>(), 6);
    }

    static string TrainTeacher()
    {
        var config = TinyJobs.Load("tiny-pr-moe", steps: 3);
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        return run.Run(null, CancellationToken.None).Checkpoint!;
    }

    static JobConfig Student(string teacher, int steps, int kdStop)
    {
        // 6-layer PR-MoE teacher (MoE at 1, 3, 5) → a 4-layer student keeping teacher layers 0, 1, 4, 5: still dense,
        // MoE, dense, MoE with 4 and 8 experts.
        var config = TinyJobs.Load("tiny-pr-moe", steps);
        return config with
        {
            Name = "student",
            Model = config.Model with { Layers = 4 },
            Moe = config.Moe with { Experts = ExpertCounts.Parse("4,8") },
            Distillation = new DistillationConfig { TeacherCheckpoint = teacher, Alpha = 0.5, Temperature = 2.0, KdStopStep = kdStop, StudentLayers = [0, 1, 4, 5] },
        };
    }

    [Fact]
    public void TheTeacherRunsOnlyUntilTheKdStopStepAndIsThenReleased()
    {
        string teacher = TrainTeacher();
        var config = Student(teacher, steps: 5, kdStop: 2) with { Training = Student(teacher, 5, 2).Training with { MicroBatchSize = 8 } };
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory()));
        var held = run.Trainer.Teacher!;
        var kd = new List<double?>();
        for (int i = 0; i < 5; i++) kd.Add(run.Trainer.TrainStep().KdLoss);
        Assert.Equal(2 * 2, held.Forwards); // 2 steps × 2 micro-batches
        Assert.True(held.Released);
        Assert.Null(run.Trainer.Teacher);
        Assert.All(kd.Take(2), v => Assert.True(v > 0));
        Assert.All(kd.Skip(2), v => Assert.Null(v));
    }

    [Fact]
    public void AStudentInitialisedFromTheTeacherStartsWithItsWeights()
    {
        string teacher = TrainTeacher();
        using var run = TrainingRun.Create(Student(teacher, 1, 1), TinyJobs.Options(TinyJobs.TempDirectory()));
        var teacherBlock = run.Trainer.Teacher!.Model!.named_parameters().Where(p => p.name.StartsWith("blocks.4.", StringComparison.Ordinal)).ToArray();
        var studentBlock = run.Model.named_parameters().Where(p => p.name.StartsWith("blocks.2.", StringComparison.Ordinal)).ToArray();
        Assert.Equal(teacherBlock.Length, studentBlock.Length);
        foreach (var (t, s) in teacherBlock.Zip(studentBlock))
            Assert.True(t.parameter.eq(s.parameter).all().item<bool>(), $"{s.name} differs from {t.name}");
    }

    [Fact]
    public void ResumingAcrossTheKdStopStepReproducesTheUninterruptedRun()
    {
        string teacher = TrainTeacher();
        var config = Student(teacher, steps: 6, kdStop: 3);
        List<double> whole;
        using (var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory())))
            whole = run.Run(null, CancellationToken.None).Losses.ToList();
        string output = TinyJobs.TempDirectory();
        string checkpoint;
        using (var first = TrainingRun.Create(config, TinyJobs.Options(output, stopAfter: 2)))
            checkpoint = first.Run(null, CancellationToken.None).Checkpoint!;
        using var second = TrainingRun.Create(config, TinyJobs.Options(output, resume: checkpoint));
        var resumed = second.Run(null, CancellationToken.None).Losses;
        Assert.Equal(4, resumed.Count);
        for (int i = 0; i < resumed.Count; i++)
            Assert.True(Math.Abs(resumed[i] - whole[2 + i]) < 1e-5, $"step {3 + i}: resumed {resumed[i]} vs {whole[2 + i]}");

        // Resuming after the stop step never loads the teacher.
        using var late = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory(), resume: CheckpointAfter(config, 4)));
        Assert.Null(late.Trainer.Teacher);
    }

    static string CheckpointAfter(JobConfig config, int steps)
    {
        using var run = TrainingRun.Create(config, TinyJobs.Options(TinyJobs.TempDirectory(), stopAfter: steps));
        return run.Run(null, CancellationToken.None).Checkpoint!;
    }
}
