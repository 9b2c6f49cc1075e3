using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Grains.Planning;

/// <summary>The phases a job config asks for, in order.</summary>
public static class JobPhases
{
    /// <summary>
    /// A training config is one train phase up to its last step, then an evaluation. Distillation configs
    /// (Mixture-of-Students with staged KD) will add DistilWithKd / DistilWithoutKd phases once the engine has a
    /// distillation trainer; the coordinator already runs any list of phases.
    /// </summary>
    public static IReadOnlyList<JobPhase> For(JobConfig config, long? stopAfter) =>
    [
        new JobPhase(PhaseKind.Train, Math.Min(config.Training.Steps, stopAfter ?? config.Training.Steps)),
        new JobPhase(PhaseKind.Evaluate, Math.Min(config.Training.Steps, stopAfter ?? config.Training.Steps)),
    ];
}
