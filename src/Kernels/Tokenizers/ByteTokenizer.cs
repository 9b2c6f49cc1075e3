using System.Text;

namespace Orleans.MoE.Kernels.Tokenizers;

/// <summary>Tokenizes text as its UTF-8 bytes (ids 0..255) plus one end-of-text id (256).</summary>
public sealed class ByteTokenizer : ITextTokenizer
{
    /// <summary>The id that separates documents.</summary>
    public const int EndOfTextId = 256;

    /// <summary>What Decode writes for the end-of-text id, matching GPT-2's spelling.</summary>
    public const string EndOfTextMarker = "<|endoftext|>";

    // Encoding.UTF8 replaces malformed sequences with U+FFFD instead of throwing, which Decode relies on
    // because a model can emit any byte sequence.
    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <inheritdoc />
    public string Name => "byte";

    /// <inheritdoc />
    public int VocabSize => 257;

    /// <inheritdoc />
    public int EndOfText => EndOfTextId;

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] bytes = Utf8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var pending = new List<byte>(ids.Count);
        foreach (int id in ids)
        {
            if (id == EndOfTextId)
            {
                // Bytes before the marker are decoded on their own so a broken sequence cannot swallow it.
                FlushBytes(pending, text);
                text.Append(EndOfTextMarker);
            }
            else if (id is >= 0 and < 256)
            {
                pending.Add((byte)id);
            }
            else
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"byte tokenizer ids are 0..{EndOfTextId}");
            }
        }
        FlushBytes(pending, text);
        return text.ToString();
    }

    private static void FlushBytes(List<byte> pending, StringBuilder text)
    {
        if (pending.Count == 0) return;
        text.Append(Utf8.GetString(pending.ToArray()));
        pending.Clear();
    }
}
