using Orleans.MoE.Grains.Jobs;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>Which checkpoint a job that lost a silo resumes from, when its newest ones are damaged.</summary>
public class RollbackPointTests
{
    [Fact]
    public void ACorruptAndATornCheckpointAreSkippedWithTheReasonAndTheNewestGoodOneIsUsed()
    {
        var tiny = TinyConfigs.Load("tiny-pr-moe", steps: 4);
        var config = tiny with { Training = tiny.Training with { CheckpointInterval = 1 } };
        string output = TinyConfigs.TempDirectory();
        using (var run = TrainingRun.Create(config, TinyConfigs.Options(output)))
            run.Run(null, CancellationToken.None);
        string checkpoints = Path.Combine(output, "checkpoints");
        string Step(int step) => Path.Combine(checkpoints, CheckpointDirectory.StepName(step));

        // Step 3: one byte of a weight file flipped (bit rot, a bad disk). Step 2: torn, its manifest never written.
        string dense = Path.Combine(Step(3), "dense.safetensors");
        var bytes = File.ReadAllBytes(dense);
        bytes[^1] ^= 0x55;
        File.WriteAllBytes(dense, bytes);
        File.Delete(Path.Combine(Step(2), "manifest.json"));

        // The coordinator had recorded step 3 when the silo died (step 4's checkpoint is past it, so not a candidate).
        var point = RollbackPoint.Find(checkpoints, recordedStep: 3);

        Assert.Equal(1, point.Step);
        Assert.Equal(Step(1), point.Path);
        Assert.Equal(2, point.Skipped.Count);
        Assert.Contains(point.Skipped, m => m.Contains(CheckpointDirectory.StepName(2)) && m.Contains("never committed"));
        Assert.Contains(point.Skipped, m => m.Contains(CheckpointDirectory.StepName(3)) && m.Contains("dense.safetensors") && m.Contains("SHA-256"));
        Assert.Null(RollbackPoint.Find(Path.Combine(output, "none"), recordedStep: 3).Path);
    }
}
