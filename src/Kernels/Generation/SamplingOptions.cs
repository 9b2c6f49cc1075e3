namespace Orleans.MoE.Kernels.Generation;

/// <summary>How the next token is drawn: temperature 0 is greedy; top-p keeps the smallest set of tokens whose probability reaches p.</summary>
public sealed record SamplingOptions
{
    public int MaxTokens { get; init; } = 64;
    public double Temperature { get; init; } = 0.8;
    public double TopP { get; init; } = 0.95;
    public long Seed { get; init; } = 1;
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Keep generating past end of text (benchmarks that need exactly MaxTokens tokens).</summary>
    public bool IgnoreEndOfText { get; init; }

    /// <summary>Throws ArgumentException naming the parameter when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxTokens < 1) throw new ArgumentException($"max_tokens: {MaxTokens} must be at least 1", nameof(MaxTokens));
        if (Temperature < 0 || double.IsNaN(Temperature)) throw new ArgumentException($"temperature: {Temperature} must be ≥ 0", nameof(Temperature));
        if (TopP is <= 0 or > 1 || double.IsNaN(TopP)) throw new ArgumentException($"top_p: {TopP} must be in (0, 1]", nameof(TopP));
    }
}
