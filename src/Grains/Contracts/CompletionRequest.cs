namespace Orleans.MoE.Grains.Contracts;

/// <summary>One completion asked of a deployment (OpenAI's completions parameters).</summary>
[GenerateSerializer, Immutable]
public sealed record CompletionRequest
{
    [Id(0)] public required string Prompt { get; init; }
    [Id(1)] public int MaxTokens { get; init; } = 16;
    [Id(2)] public double Temperature { get; init; } = 1.0;
    [Id(3)] public double TopP { get; init; } = 1.0;

    /// <summary>Sampling seed; null = a fresh one per request.</summary>
    [Id(4)] public long? Seed { get; init; }

    [Id(5)] public IReadOnlyList<string> Stop { get; init; } = [];
}
