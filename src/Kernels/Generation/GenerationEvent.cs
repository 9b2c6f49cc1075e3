namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// What one engine step produced for one request: the sampled token (null when the request ended without one, as
/// at end of text) and the text it completed (empty while a multi-byte character is incomplete); on the last
/// event, why the request finished and how many tokens it used.
/// </summary>
public sealed record GenerationEvent(string RequestId, int? Token, string Text, FinishReason? Finish = null, int PromptTokens = 0, int CompletionTokens = 0);

/// <summary>Why a completion ended (the names of OpenAI's finish_reason).</summary>
public enum FinishReason
{
    /// <summary>End of text, or a stop sequence.</summary>
    Stop,

    /// <summary>max_tokens reached, or the model's context is full.</summary>
    Length,

    /// <summary>The caller went away or cancelled.</summary>
    Cancelled,
}
