using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Kernels.Tests;

public class TokenizerTests
{
    [Fact]
    public void ByteTokenizerRoundTripsNonAsciiText()
    {
        var tokenizer = new ByteTokenizer();
        const string text = "Grüße, 東京! 🙂 naïve";
        int[] ids = tokenizer.Encode(text);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal(257, tokenizer.VocabSize);
        Assert.Equal(256, tokenizer.EndOfText);
    }

    [Fact]
    public void ByteTokenizerDecodesInvalidUtf8AsReplacementCharacter()
    {
        var tokenizer = new ByteTokenizer();
        // 0xC3 starts a two-byte sequence that 'A' does not continue; 0xFF is never valid UTF-8.
        Assert.Equal("\uFFFDA\uFFFD", tokenizer.Decode([0xC3, 'A', 0xFF]));
        Assert.Equal("a<|endoftext|>b", tokenizer.Decode(['a', ByteTokenizer.EndOfTextId, 'b']));
    }

    [Fact]
    public void Gpt2EncodesHelloWorldToKnownIdsAndRoundTrips()
    {
        var tokenizer = new Gpt2Tokenizer();
        Assert.Equal([15496, 995], tokenizer.Encode("Hello world"));
        const string text = "The Fulton County Grand Jury said Friday, \"no evidence\" — naïve café.";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.Equal("<|endoftext|>", tokenizer.Decode([tokenizer.EndOfText]));
    }

    [Fact]
    public void FactoryCreatesEachNamedTokenizer()
    {
        Assert.IsType<ByteTokenizer>(TokenizerFactory.Create("byte"));
        Assert.IsType<Gpt2Tokenizer>(TokenizerFactory.Create("gpt2"));
        Assert.Equal("gpt2", TokenizerFactory.Create("gpt2").Name);
    }

    [Fact]
    public void FactoryRejectsUnknownNameListingTheAllowedOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create("sentencepiece"));
        Assert.Contains("tokenizer 'sentencepiece'", e.Message);
        Assert.Contains("byte, gpt2", e.Message);
    }
}
