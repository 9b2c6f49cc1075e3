using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// Turns a request's sampled tokens into text pieces as they arrive. A piece is held back while it ends inside a
/// multi-byte character or with the beginning of a stop sequence (so text that turns out to start a stop sequence
/// is never sent), and the completion is cut before the first stop sequence.
/// </summary>
public sealed class CompletionText(ITextTokenizer tokenizer, IReadOnlyList<string> stops)
{
    readonly List<int> tokens = [];
    string decoded = "";
    string emitted = "";

    /// <summary>Tokens accepted so far.</summary>
    public int Count => tokens.Count;

    /// <summary>The text emitted so far.</summary>
    public string Text => emitted;

    /// <summary>Adds a token; returns the new text to emit and whether a stop sequence ended the completion.</summary>
    public (string Piece, bool Stopped) Add(int token)
    {
        tokens.Add(token);
        // Decoding the whole completion (not the token alone) lets a token finish a character an earlier one began.
        decoded = tokenizer.Decode(tokens);
        int stopAt = FirstStop(decoded);
        if (stopAt >= 0) return (Emit(stopAt), true);
        int safe = decoded.Length - HeldBack(decoded);
        return (Emit(safe), false);
    }

    /// <summary>The text held back when the completion ends for another reason than a stop sequence.</summary>
    public string Flush() => Emit(decoded.EndsWith('\uFFFD') ? decoded.Length - 1 : decoded.Length);

    string Emit(int upTo)
    {
        // Decoding more tokens can rewrite an incomplete character's replacement mark, never what came before it.
        if (upTo <= emitted.Length || !decoded.StartsWith(emitted, StringComparison.Ordinal)) return "";
        string piece = decoded[emitted.Length..upTo];
        emitted = decoded[..upTo];
        return piece;
    }

    /// <summary>Characters at the end to keep back: an incomplete character, or the longest start of a stop sequence.</summary>
    int HeldBack(string text)
    {
        int held = text.EndsWith('\uFFFD') ? 1 : 0;
        foreach (string stop in stops)
            for (int length = Math.Min(stop.Length - 1, text.Length); length > held; length--)
                if (text.EndsWith(stop[..length], StringComparison.Ordinal))
                {
                    held = length;
                    break;
                }
        return held;
    }

    int FirstStop(string text)
    {
        int best = -1;
        foreach (string stop in stops)
        {
            if (stop.Length == 0) continue;
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }
}
