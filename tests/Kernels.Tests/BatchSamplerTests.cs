using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests;

public class BatchSamplerTests
{
    private static readonly int[] Tokens = [.. Enumerable.Range(0, 1003).Select(i => i % 251)];

    private static long[] Values(torch.Tensor t) => t.data<long>().ToArray();

    [Fact]
    public void BatchesAreInt64WindowsWithTargetsShiftedByOne()
    {
        var sampler = new BatchSampler(Tokens, sequenceLength: 10, batchSize: 4, seed: 7);
        using var batch = sampler.Next();
        Assert.Equal(torch.ScalarType.Int64, batch.Input.dtype);
        Assert.Equal([4L, 10L], batch.Input.shape);
        Assert.Equal([4L, 10L], batch.Target.shape);
        long[] input = Values(batch.Input);
        long[] target = Values(batch.Target);
        var starts = sampler.WindowStarts(SamplerPosition.Start);
        for (int r = 0; r < 4; r++)
        {
            for (int t = 0; t < 10; t++)
            {
                Assert.Equal(Tokens[starts[r] + t], input[(r * 10) + t]);
                Assert.Equal(Tokens[starts[r] + t + 1], target[(r * 10) + t]);
            }
        }
    }

    [Fact]
    public void SameSeedGivesSameBatchesAndOtherSeedDiffers()
    {
        var a = new BatchSampler(Tokens, 10, 4, seed: 7);
        var b = new BatchSampler(Tokens, 10, 4, seed: 7);
        var c = new BatchSampler(Tokens, 10, 4, seed: 8);
        var fromA = new List<long>();
        var fromB = new List<long>();
        var fromC = new List<long>();
        for (int i = 0; i < 30; i++)
        {
            using var ba = a.Next();
            using var bb = b.Next();
            using var bc = c.Next();
            fromA.AddRange(Values(ba.Input));
            fromB.AddRange(Values(bb.Input));
            fromC.AddRange(Values(bc.Input));
        }
        Assert.Equal(fromA, fromB);
        Assert.NotEqual(fromA, fromC);
    }

    [Fact]
    public void EachEpochVisitsEveryWindowOnceInANewOrder()
    {
        var sampler = new BatchSampler(Tokens, 10, 4, seed: 3);
        Assert.Equal(100, sampler.WindowsPerEpoch);
        Assert.Equal(25, sampler.BatchesPerEpoch);
        var epoch0 = Enumerable.Range(0, 25).SelectMany(i => sampler.WindowStarts(new SamplerPosition(0, i))).ToList();
        var epoch1 = Enumerable.Range(0, 25).SelectMany(i => sampler.WindowStarts(new SamplerPosition(1, i))).ToList();
        Assert.Equal(100, epoch0.Distinct().Count());
        long offset0 = epoch0.Min();
        Assert.InRange(offset0, 0, 2);
        Assert.All(epoch0, s => Assert.Equal(offset0, s % 10));
        Assert.NotEqual(epoch0, epoch1);
    }

    [Fact]
    public void ResumingFromASavedPositionReproducesTheUninterruptedRun()
    {
        var uninterrupted = new BatchSampler(Tokens, 10, 4, seed: 11);
        var expected = new List<long[]>();
        SamplerPosition saved = default;
        for (int i = 0; i < 60; i++)
        {
            if (i == 37) saved = uninterrupted.Position;
            using var batch = uninterrupted.Next();
            if (i >= 37) expected.Add(Values(batch.Target));
        }
        Assert.Equal(new SamplerPosition(1, 12), saved);

        // The position survives a JSON round trip, as it would inside a checkpoint.
        string json = System.Text.Json.JsonSerializer.Serialize(saved);
        var restored = System.Text.Json.JsonSerializer.Deserialize<SamplerPosition>(json);
        var resumed = new BatchSampler(Tokens, 10, 4, seed: 11, restored);
        foreach (long[] batchTargets in expected)
        {
            using var batch = resumed.Next();
            Assert.Equal(batchTargets, Values(batch.Target));
        }
        Assert.Equal(uninterrupted.Position, resumed.Position);
    }

    [Fact]
    public void TooFewTokensForOneBatchIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new BatchSampler([.. Enumerable.Range(0, 30)], 10, 4, seed: 0));
        Assert.Contains("fewer than one batch", e.Message);
    }

    [Fact]
    public void EvaluationBatchesPredictEveryTokenAfterTheFirstExactlyOnce()
    {
        int[] tokens = [.. Enumerable.Range(0, 58)];
        var targets = new List<long>();
        var shapes = new List<string>();
        foreach (var batch in EvaluationBatches.Enumerate(tokens, sequenceLength: 8, batchSize: 3))
        {
            using (batch)
            {
                shapes.Add(string.Join("x", batch.Input.shape));
                long[] input = Values(batch.Input);
                long[] target = Values(batch.Target);
                Assert.All(input.Zip(target), p => Assert.Equal(p.First + 1, p.Second));
                targets.AddRange(target);
            }
        }
        Assert.Equal(["3x8", "3x8", "1x8", "1x1"], shapes);
        Assert.Equal(Enumerable.Range(1, 57).Select(i => (long)i), targets);
        Assert.Equal(57, EvaluationBatches.TargetCount(tokens));
    }

    [Fact]
    public void TokenStreamSeparatesTextsWithEndOfTextAndCountsUtf8Bytes()
    {
        CorpusText[] texts = [new("a", '-', "hé"), new("b", '-', "yo")];
        var stream = TokenStream.Encode(texts, new ByteTokenizer());
        Assert.Equal([(int)'h', 0xC3, 0xA9, ByteTokenizer.EndOfTextId, 'y', 'o'], stream.Tokens);
        Assert.Equal(5, stream.Utf8ByteCount);
        Assert.Equal("byte", stream.TokenizerName);
    }
}
