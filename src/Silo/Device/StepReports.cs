using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Silo.Device;

/// <summary>Turns the engine's per-step numbers into the control plane's serialisable reports.</summary>
public static class StepReports
{
    public static StepReport From(TrainingProgress progress, string silo)
    {
        var m = progress.Step ?? throw new ArgumentException("progress without a step", nameof(progress));
        return new StepReport
        {
            Step = m.Step,
            TotalSteps = progress.TotalSteps,
            Loss = m.Loss,
            AuxLoss = m.AuxLoss,
            ZLoss = m.ZLoss,
            LearningRate = m.LearningRate,
            GradNorm = m.GradNorm,
            Tokens = m.Tokens,
            Seconds = m.Seconds,
            CommunicationSeconds = m.CommunicationSeconds,
            EtaSeconds = progress.Eta.TotalSeconds,
            Layers = m.ExpertLoads.Select(l => new LayerLoad(l.Layer, l.Load, l.Kept, l.Capacity)).ToArray(),
            Silo = silo,
            Validation = progress.Validation is { } v ? new ValidationReport(v.Loss, v.Perplexity, v.BitsPerByte, v.Tokens) : null,
            Checkpoint = progress.Checkpoint,
        };
    }
}
