using System.Text;
using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Kernels.Data;

/// <summary>A corpus encoded into one token array, documents separated by the tokenizer's end-of-text id.</summary>
/// <param name="Tokens">All token ids, in document order.</param>
/// <param name="Utf8ByteCount">UTF-8 bytes of the texts (separators excluded): the denominator of bits per byte.</param>
/// <param name="TokenizerName">The tokenizer that produced the ids.</param>
public sealed record TokenStream(int[] Tokens, long Utf8ByteCount, string TokenizerName)
{
    /// <summary>Encodes <paramref name="texts"/> in order, with one end-of-text id between consecutive texts.</summary>
    public static TokenStream Encode(IReadOnlyList<CorpusText> texts, ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var tokens = new List<int>();
        long bytes = 0;
        for (int i = 0; i < texts.Count; i++)
        {
            if (i > 0) tokens.Add(tokenizer.EndOfText);
            tokens.AddRange(tokenizer.Encode(texts[i].Text));
            bytes += Encoding.UTF8.GetByteCount(texts[i].Text);
        }
        return new TokenStream([.. tokens], bytes, tokenizer.Name);
    }
}
