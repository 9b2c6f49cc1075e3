using System.Text;

namespace Orleans.MoE.Kernels.Data;

/// <summary>Turns the Brown corpus' tagged form ("The/at jury/nn said/vbd ./.") into ordinary text.</summary>
public static class BrownDetokenizer
{
    // Tokens that attach to the word before them. A lone ' in Brown is a closing single quote or a plural
    // possessive ("the farmers ' union"), both of which hug the previous word.
    private static readonly HashSet<string> NoSpaceBefore = new(StringComparer.Ordinal)
    {
        ",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "...",
        "'s", "'S", "n't", "N'T", "'re", "'ll", "'d", "'ve", "'m",
    };

    // Tokens that attach to the word after them.
    private static readonly HashSet<string> NoSpaceAfter = new(StringComparer.Ordinal) { "(", "[", "{", "``", "`" };

    /// <summary>Strips the tags of one Brown file and joins its words; paragraphs become lines.</summary>
    public static string Detokenize(string tagged)
    {
        ArgumentNullException.ThrowIfNull(tagged);
        var paragraphs = new List<string>();
        foreach (var paragraph in SplitParagraphs(tagged))
        {
            string text = JoinWords(paragraph.SelectMany(SplitTokens).Select(WordOf));
            if (text.Length > 0) paragraphs.Add(text);
        }
        return string.Join("\n", paragraphs);
    }

    /// <summary>The word of a "word/tag" token: everything before the last '/', since words may hold '/' ("3/4/cd").</summary>
    public static string WordOf(string token)
    {
        int slash = token.LastIndexOf('/');
        return slash > 0 ? token[..slash] : token;
    }

    /// <summary>Joins words with single spaces, except around punctuation and quotes that attach to a neighbour.</summary>
    public static string JoinWords(IEnumerable<string> words)
    {
        var text = new StringBuilder();
        bool attachNext = true;
        foreach (string word in words)
        {
            if (!attachNext && !NoSpaceBefore.Contains(word)) text.Append(' ');
            text.Append(Surface(word));
            attachNext = NoSpaceAfter.Contains(word);
        }
        return text.ToString();
    }

    // Brown writes double quotes TeX-style; plain text wants the ASCII character.
    private static string Surface(string word) => word switch
    {
        "``" or "''" => "\"",
        "`" => "'",
        _ => word,
    };

    private static IEnumerable<string> SplitTokens(string line) =>
        line.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);

    // A paragraph is a run of non-blank lines (one sentence per line); blank lines separate paragraphs.
    private static IEnumerable<List<string>> SplitParagraphs(string tagged)
    {
        var current = new List<string>();
        foreach (string line in tagged.Split('\n'))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                if (current.Count > 0) yield return current;
                current = [];
            }
            else
            {
                current.Add(line);
            }
        }
        if (current.Count > 0) yield return current;
    }
}
