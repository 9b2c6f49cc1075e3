using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Kernels.Tests.Training;

/// <summary>The repository's tiny configs, shortened for tests, run on the CPU over the real Brown corpus.</summary>
internal static class TinyJobs
{
    public static string RepositoryRoot =>
        CacheDirectory.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("tests run inside the repository");

    public static JobConfig Load(string name, int steps) => Shorten(JobConfig.Load(Path.Combine(RepositoryRoot, "configs", name + ".json")), steps);

    /// <summary>tiny-pr-moe with routing groups of 256 tokens (whole groups per rank) and an expert-parallel size (0: the world).</summary>
    public static JobConfig ExpertParallel(int steps, int expertParallel)
    {
        var config = Load("tiny-pr-moe", steps);
        return config with { Moe = config.Moe with { RoutingGroupTokens = 256 }, Parallel = new ParallelConfig { ExpertParallel = expertParallel } };
    }

    public static JobConfig Shorten(JobConfig config, int steps) => config with
    {
        Device = "cpu",
        Training = config.Training with { Steps = steps, WarmupSteps = Math.Min(config.Training.WarmupSteps, steps / 4), EvalInterval = 0, CheckpointInterval = 0, EvalTokens = 16384 },
    };

    public static TrainingRunOptions Options(string output, string? resume = null, long? stopAfter = null) => new()
    {
        OutputDirectory = output,
        CacheDirectory = CacheDirectory.Default(),
        ResumeFrom = resume,
        StopAfter = stopAfter,
        Device = "cpu",
    };

    public static string TempDirectory() => Orleans.MoE.Tests.TestDirectories.Create();
}
