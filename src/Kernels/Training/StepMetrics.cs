namespace Orleans.MoE.Kernels.Training;

/// <summary>What one optimiser step reports (read back to the host once per step).</summary>
public sealed record StepMetrics
{
    public required long Step { get; init; }
    public required double Loss { get; init; }
    public required double AuxLoss { get; init; }
    public required double ZLoss { get; init; }

    /// <summary>The knowledge-distillation term (T²·KL to the teacher), or null when the teacher did not run this step.</summary>
    public double? KdLoss { get; init; }
    public required double LearningRate { get; init; }
    public required double GradNorm { get; init; }
    public required long Tokens { get; init; }
    public required double Seconds { get; init; }
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;

    /// <summary>Seconds this rank spent in collectives during the step, when measured (parallel.profile_communication).</summary>
    public double? CommunicationSeconds { get; init; }

    /// <summary>Per MoE layer: tokens routed to each expert this step (before drops).</summary>
    public required IReadOnlyList<ExpertLoad> ExpertLoads { get; init; }

    /// <summary>Fraction of (token, choice) assignments dropped for capacity, over all MoE layers.</summary>
    public double DroppedFraction
    {
        get
        {
            long routed = ExpertLoads.Sum(l => l.Load.Sum()), kept = ExpertLoads.Sum(l => l.Kept.Sum());
            return routed == 0 ? 0 : (double)(routed - kept) / routed;
        }
    }

    /// <summary>Mean over MoE layers of mean load / max load (1 = perfectly balanced).</summary>
    public double Balance => ExpertLoads.Count == 0 ? 1 : ExpertLoads.Average(l => l.Balance);
}

/// <summary>Load of one MoE layer's experts during one step.</summary>
public sealed record ExpertLoad(int Layer, long[] Load, long[] Kept, int Capacity)
{
    public double Balance => Load.Max() == 0 ? 1 : Load.Average() / Load.Max();
}
