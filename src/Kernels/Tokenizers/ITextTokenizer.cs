namespace Orleans.MoE.Kernels.Tokenizers;

/// <summary>Turns text into token ids and back; every model and data pipeline speaks through this.</summary>
public interface ITextTokenizer
{
    /// <summary>The name a config file uses to choose this tokenizer ("byte", "gpt2").</summary>
    string Name { get; }

    /// <summary>Number of distinct ids, end-of-text included: the embedding and output layers' size.</summary>
    int VocabSize { get; }

    /// <summary>The id placed between documents in a token stream.</summary>
    int EndOfText { get; }

    /// <summary>Encodes text into token ids.</summary>
    int[] Encode(string text);

    /// <summary>Decodes token ids into text; never throws on ids that do not form valid UTF-8.</summary>
    string Decode(IReadOnlyList<int> ids);
}
