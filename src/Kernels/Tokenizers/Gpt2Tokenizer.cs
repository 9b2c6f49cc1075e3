using Microsoft.ML.Tokenizers;

namespace Orleans.MoE.Kernels.Tokenizers;

/// <summary>GPT-2's byte-level BPE (50,257 ids, end-of-text 50256), from Microsoft.ML.Tokenizers' bundled data.</summary>
public sealed class Gpt2Tokenizer : ITextTokenizer
{
    /// <summary>GPT-2's &lt;|endoftext|&gt; id.</summary>
    public const int EndOfTextId = 50256;

    // Building the BPE tables parses a few MB of embedded data; one shared, thread-safe instance is enough.
    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    /// <inheritdoc />
    public string Name => "gpt2";

    /// <inheritdoc />
    public int VocabSize => 50257;

    /// <inheritdoc />
    public int EndOfText => EndOfTextId;

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. Shared.Value.EncodeToIds(text)];
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        foreach (int id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"gpt2 ids are 0..{VocabSize - 1}");
        }
        return Shared.Value.Decode(ids);
    }
}
