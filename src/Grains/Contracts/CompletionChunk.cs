namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// A piece of a streamed completion: new text, and on the last piece why it finished ("stop", "length",
/// "cancelled") with the token counts. <see cref="Replica"/> names the silo that generated it.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CompletionChunk
{
    [Id(0)] public string Text { get; init; } = "";
    [Id(1)] public string? FinishReason { get; init; }
    [Id(2)] public int PromptTokens { get; init; }
    [Id(3)] public int CompletionTokens { get; init; }
    [Id(4)] public string Replica { get; init; } = "";
}
