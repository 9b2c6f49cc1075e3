using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Generation;

public class TextGeneratorTests
{
    static GptModel TinyModel()
    {
        // Its own generator: tests of other classes run in parallel and reseed torch's global one.
        using var init = new torch.Generator(9);
        return new GptModel(new ModelConfig { Layers = 2, DModel = 32, Heads = 2, DFf = 64, ContextLength = 24 }, new MoEConfig { Experts = ExpertCounts.Uniform(4) }, 257, init);
    }

    static string Run(GptModel model, SamplingOptions options) =>
        string.Concat(new TextGenerator(model, new ByteTokenizer(), torch.CPU).Generate("abc", options).Select(t => t.Text));

    [Fact]
    public void SameSeedSameText_OtherSeedOtherText()
    {
        using var model = TinyModel();
        var options = new SamplingOptions { MaxTokens = 30, Temperature = 1.5, TopP = 1.0, Seed = 3 };
        Assert.Equal(Run(model, options), Run(model, options));
        Assert.NotEqual(Run(model, options), Run(model, options with { Seed = 4 }));
    }

    [Fact]
    public void GenerationEndsWithLengthWhenTheContextIsFull()
    {
        using var model = TinyModel();
        // Context 24, prompt 3 (byte tokenizer): 21 positions to feed back, plus the last token sampled (never fed).
        var events = new TextGenerator(model, new ByteTokenizer(), torch.CPU)
            .Generate("abc", new SamplingOptions { MaxTokens = 60, Temperature = 1.0, Seed = 1 }).ToList();
        Assert.InRange(events.Count(e => e.Token is not null), 0, 22);
        Assert.True(events[^1].Finish is FinishReason.Length or FinishReason.Stop);
        Assert.All(events[..^1], e => Assert.Null(e.Finish));
    }

    [Fact]
    public void APromptLongerThanTheContextKeepsItsEnd()
    {
        using var model = TinyModel();
        var events = new TextGenerator(model, new ByteTokenizer(), torch.CPU)
            .Generate(new string('x', 40), new SamplingOptions { MaxTokens = 5, Temperature = 0 }).ToList();
        Assert.Equal(24 / 2, events[^1].PromptTokens); // the newest half of the context
        Assert.InRange(events.Count(e => e.Token is not null), 1, 5);
    }

    [Fact]
    public void TopPSamplingKeepsOnlyTheNucleus()
    {
        // Probabilities 0.5, 0.3, 0.2: with p = 0.6 only the first two tokens can be drawn.
        var logits = torch.tensor(new float[] { MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.2f) }).view(1, 3);
        using var generator = new torch.Generator(1);
        var drawn = Enumerable.Range(0, 300).Select(_ => TokenSampler.Sample(logits, 1.0, 0.6, generator).item<long>()).ToHashSet();
        Assert.Equal(new HashSet<long> { 0, 1 }, drawn);
    }

    [Fact]
    public void BadSamplingParametersAreNamed()
    {
        Assert.Contains("top_p", Assert.Throws<ArgumentException>(() => new SamplingOptions { TopP = 1.5 }.Validate()).Message);
        Assert.Contains("max_tokens", Assert.Throws<ArgumentException>(() => new SamplingOptions { MaxTokens = 0 }.Validate()).Message);
    }
}
