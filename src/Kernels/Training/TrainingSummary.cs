using System.Text.Json.Serialization;

namespace Orleans.MoE.Kernels.Training;

/// <summary>The outcome of a training run, printed as the last JSON line of <c>moe train --json</c>.</summary>
public sealed record TrainingSummary
{
    public required string Name { get; init; }
    public required long Steps { get; init; }
    public required double TrainLoss { get; init; }
    public required double ValLoss { get; init; }
    public required double ValBitsPerByte { get; init; }
    public required double ValPerplexity { get; init; }

    /// <summary>Validation loss of a unigram model fitted on the training split: the floor a model must beat.</summary>
    public required double UnigramValLoss { get; init; }

    public required long ParamsTotal { get; init; }
    public required long ParamsActivePerToken { get; init; }
    public required double TokensPerSecond { get; init; }
    public required double Seconds { get; init; }
    public required string Device { get; init; }
    public required string? Checkpoint { get; init; }

    [JsonPropertyName("losses")]
    public required IReadOnlyList<double> Losses { get; init; }
}
