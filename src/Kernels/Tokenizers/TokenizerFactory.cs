namespace Orleans.MoE.Kernels.Tokenizers;

/// <summary>Creates a tokenizer from the name a config file gives.</summary>
public static class TokenizerFactory
{
    /// <summary>Names Create accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["byte", "gpt2"];

    /// <summary>Returns the tokenizer called <paramref name="name"/> ("byte" or "gpt2").</summary>
    public static ITextTokenizer Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "byte" => new ByteTokenizer(),
            "gpt2" => new Gpt2Tokenizer(),
            _ => throw new ArgumentException(
                $"tokenizer '{name}' is not one of: {string.Join(", ", Names)}", nameof(name)),
        };
    }
}
