namespace Orleans.MoE.Grains.Contracts;

/// <summary>The numbers one optimiser step leaves behind (never tensors): what the coordinator keeps and watchers see.</summary>
[GenerateSerializer, Immutable]
public sealed record StepReport
{
    [Id(0)] public required long Step { get; init; }
    [Id(1)] public required long TotalSteps { get; init; }
    [Id(2)] public required double Loss { get; init; }
    [Id(3)] public required double AuxLoss { get; init; }
    [Id(4)] public required double ZLoss { get; init; }
    [Id(5)] public required double LearningRate { get; init; }
    [Id(6)] public required double GradNorm { get; init; }
    [Id(7)] public required long Tokens { get; init; }

    /// <summary>Seconds the step took on the device.</summary>
    [Id(8)] public required double Seconds { get; init; }

    [Id(9)] public required double EtaSeconds { get; init; }
    [Id(10)] public required IReadOnlyList<LayerLoad> Layers { get; init; }

    /// <summary>The silo whose device ran the step.</summary>
    [Id(11)] public required string Silo { get; init; }

    /// <summary>Set when a periodic evaluation ran after this step.</summary>
    [Id(12)] public ValidationReport? Validation { get; init; }

    /// <summary>Set when a periodic checkpoint was written after this step.</summary>
    [Id(13)] public string? Checkpoint { get; init; }

    /// <summary>Seconds the reporting rank spent in collectives during the step (when the job measures it).</summary>
    [Id(14)] public double? CommunicationSeconds { get; init; }

    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;

    /// <summary>Fraction of (token, choice) assignments dropped for capacity over all MoE layers.</summary>
    public double DroppedFraction
    {
        get
        {
            long routed = Layers.Sum(l => l.Load.Sum()), kept = Layers.Sum(l => l.Kept.Sum());
            return routed == 0 ? 0 : (double)(routed - kept) / routed;
        }
    }

    /// <summary>Mean over MoE layers of mean load / max load (1 = perfectly balanced).</summary>
    public double Balance => Layers.Count == 0 ? 1 : Layers.Average(l => l.Load.Max() == 0 ? 1 : l.Load.Average() / l.Load.Max());
}

/// <summary>A validation score.</summary>
[GenerateSerializer, Immutable]
public sealed record ValidationReport([property: Id(0)] double Loss, [property: Id(1)] double Perplexity, [property: Id(2)] double BitsPerByte, [property: Id(3)] long Tokens);
