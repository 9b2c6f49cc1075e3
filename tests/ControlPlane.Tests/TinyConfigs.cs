using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>The repository's tiny configs, shortened for tests, on the CPU over the real Brown corpus.</summary>
internal static class TinyConfigs
{
    public static string RepositoryRoot =>
        CacheDirectory.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("tests run inside the repository");

    public static JobConfig Load(string name, int steps)
    {
        var config = JobConfig.Load(Path.Combine(RepositoryRoot, "configs", name + ".json"));
        return config with
        {
            Device = "cpu",
            Training = config.Training with { Steps = steps, WarmupSteps = Math.Min(config.Training.WarmupSteps, Math.Max(1, steps / 4)), EvalInterval = 0, CheckpointInterval = 0, EvalTokens = 8192 },
        };
    }

    public static TrainingRunOptions Options(string output) => new()
    {
        OutputDirectory = output,
        CacheDirectory = CacheDirectory.Default(),
        Device = "cpu",
    };

    /// <summary>A tiny PR-MoE checkpoint trained for 4 steps (once per test process) for the serving tests.</summary>
    public static readonly Lazy<string> ServingCheckpoint = new(() =>
    {
        using var run = TrainingRun.Create(Load("tiny-pr-moe", steps: 4), Options(TempDirectory()));
        return run.Run(null, CancellationToken.None).Checkpoint!;
    });

    public static string TempDirectory() => Orleans.MoE.Tests.TestDirectories.Create();
}
