using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Grains.Planning;

/// <summary>The phases a job config asks for, in order.</summary>
public static class JobPhases
{
    /// <summary>
    /// A training config is one train phase up to its last step, then an evaluation. A distillation config
    /// (Mixture-of-Students with staged KD) distils with the KD term up to its KD stop step, then without it (the
    /// teacher no longer runs), then evaluates; the engine switches the term off at that step by itself, and the
    /// phases let the coordinator, `moe watch` and the dashboard show where the job is.
    /// </summary>
    public static IReadOnlyList<JobPhase> For(JobConfig config, long? stopAfter)
    {
        long last = Math.Min(config.Training.Steps, stopAfter ?? config.Training.Steps);
        if (config.Distillation is not { } kd) return [new JobPhase(PhaseKind.Train, last), new JobPhase(PhaseKind.Evaluate, last)];
        long kdStop = kd.KdStopStep > 0 ? Math.Min(kd.KdStopStep, last) : last;
        var phases = new List<JobPhase> { new(PhaseKind.DistilWithKd, kdStop) };
        if (kdStop < last) phases.Add(new JobPhase(PhaseKind.DistilWithoutKd, last));
        phases.Add(new JobPhase(PhaseKind.Evaluate, last));
        return phases;
    }
}
