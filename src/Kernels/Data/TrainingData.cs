using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Kernels.Data;

/// <summary>The tokenizer and the three encoded splits a job trains and evaluates on.</summary>
public sealed record TrainingData(ITextTokenizer Tokenizer, TokenStream Train, TokenStream Validation, TokenStream Test)
{
    /// <summary>Loads the configured source (fetching the Brown corpus into the cache on first use) and encodes it.</summary>
    public static TrainingData Load(JobConfig config, string cacheDirectory)
    {
        var tokenizer = TokenizerFactory.Create(config.Model.Tokenizer);
        CorpusSplits splits;
        if (config.Data.Source == "brown")
        {
            splits = BrownCorpus.Load(cacheDirectory);
        }
        else
        {
            var train = TextFileCorpus.Load(config.Data.TrainFile!);
            var validation = config.Data.ValidationFile is { } v ? TextFileCorpus.Load(v) : train;
            var test = config.Data.TestFile is { } t ? TextFileCorpus.Load(t) : validation;
            splits = new CorpusSplits(train, validation, test);
        }
        return new TrainingData(tokenizer,
            TokenStream.Encode(splits.Train, tokenizer),
            TokenStream.Encode(splits.Validation, tokenizer),
            TokenStream.Encode(splits.Test, tokenizer));
    }

    /// <summary>Encodes one UTF-8 file for evaluation.</summary>
    public static TokenStream EncodeFile(string path, ITextTokenizer tokenizer) =>
        TokenStream.Encode(TextFileCorpus.Load(path), tokenizer);
}
