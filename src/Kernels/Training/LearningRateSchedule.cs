namespace Orleans.MoE.Kernels.Training;

/// <summary>Linear warm-up to the peak rate, then cosine decay to the minimum at the last step.</summary>
public sealed record LearningRateSchedule(double Peak, double Minimum, int WarmupSteps, int TotalSteps)
{
    /// <summary>The rate for 0-based optimiser step <paramref name="step"/>.</summary>
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        int decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return Minimum + 0.5 * (Peak - Minimum) * (1 + Math.Cos(Math.PI * progress));
    }
}
