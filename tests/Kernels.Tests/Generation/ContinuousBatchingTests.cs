using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Generation;

public class ContinuousBatchingTests
{
    // A residual MoE with a capacity: batched requests would change each other's drops unless serving never drops.
    static GptModel Model(string positions = "learned", double scale = 8)
    {
        using var init = new torch.Generator(21);
        var config = new ModelConfig { Layers = 4, DModel = 32, Heads = 4, DFf = 64, ContextLength = 48, Positions = positions };
        var moe = new MoEConfig { Experts = ExpertCounts.Parse("4,8"), Residual = true, DropTokens = true, CapacityFactor = 1.0, EvalCapacityFactor = 1.0, MinCapacity = 1 };
        var model = new GptModel(config, moe, 257, init);
        // Initial weights (std 0.02) make every block nearly the identity, so no token would depend on what the
        // experts compute; larger weights make the sampled tokens sensitive to each layer's output, drops included.
        using (torch.no_grad())
            foreach (var parameter in model.parameters()) parameter.mul_(scale);
        return model;
    }

    [Theory]
    [InlineData("learned")]
    [InlineData("rotary")]
    public void RowsAtDifferentPositionsDecodeTogetherAsTheFullForward(string positions)
    {
        using var model = Model(positions, scale: 1);
        model.PrepareForInference();
        using var noGrad = torch.no_grad();
        var a = torch.randint(0, 257, [1, 14]);
        var b = torch.randint(0, 257, [1, 9]);
        var fullA = model.Forward(a, RoutingContext.Inference, null, null);
        var fullB = model.Forward(b, RoutingContext.Inference, null, null);

        using var cache = new SlotKvCache(4, slots: 3, capacity: 48);
        // Slot 2 holds 10 positions of a, slot 0 holds 5 of b; then both decode one token per forward together.
        var pieceA = new List<torch.Tensor> { model.Forward(a.narrow(1, 0, 10), RoutingContext.Inference, null, cache.Rows([2])) };
        var pieceB = new List<torch.Tensor> { model.Forward(b.narrow(1, 0, 5), RoutingContext.Inference, null, cache.Rows([0])) };
        for (int t = 0; t < 4; t++)
        {
            var input = torch.cat([b.narrow(1, 5 + t, 1), a.narrow(1, 10 + t, 1)], 0);
            var logits = model.Forward(input, RoutingContext.Inference, null, cache.Rows([0, 2]));
            pieceB.Add(logits.narrow(0, 0, 1));
            pieceA.Add(logits.narrow(0, 1, 1));
        }
        Assert.Equal(14, cache.LengthOf(2));
        Assert.Equal(9, cache.LengthOf(0));
        var incrementalA = torch.cat(pieceA, 1);
        var incrementalB = torch.cat(pieceB, 1);
        AssertClose(fullA, incrementalA, "a");
        AssertClose(fullB, incrementalB, "b");
    }

    // fp32 with another summation order (cached keys are read padded and masked), as KvCacheTests allow.
    static void AssertClose(torch.Tensor expected, torch.Tensor actual, string what) =>
        Assert.True(actual.allclose(expected, rtol: 1e-4, atol: 1e-5), $"{what}: max difference {(actual - expected).abs().max().item<float>()}");

    static readonly GenerationRequest[] Requests =
    [
        new("greedy", [72, 101, 108, 108, 111], new SamplingOptions { MaxTokens = 12, Temperature = 0 }),
        new("hot", [84, 104, 101], new SamplingOptions { MaxTokens = 20, Temperature = 1.2, TopP = 1.0, Seed = 7 }),
        new("nucleus", [65, 32, 108, 111, 110, 103, 101, 114, 32, 112, 114, 111, 109, 112, 116], new SamplingOptions { MaxTokens = 9, Temperature = 0.9, TopP = 0.8, Seed = 3 }),
        new("same-seed", [84, 104, 101], new SamplingOptions { MaxTokens = 20, Temperature = 1.2, TopP = 1.0, Seed = 7 }),
        new("short", [10], new SamplingOptions { MaxTokens = 2, Temperature = 0.7, Seed = 11 }),
        new("long", [50, 51, 52, 53], new SamplingOptions { MaxTokens = 40, Temperature = 1.0, Seed = 5 }),
    ];

    static Dictionary<string, List<GenerationEvent>> Drive(GenerationEngine engine, IEnumerable<(int Step, GenerationRequest Request)> arrivals)
    {
        var pending = arrivals.OrderBy(a => a.Step).ToList();
        var seen = new Dictionary<string, List<GenerationEvent>>();
        for (int step = 0; pending.Count > 0 || engine.HasWork; step++)
        {
            foreach (var arrival in pending.Where(a => a.Step == step).ToList())
            {
                engine.Submit(arrival.Request);
                pending.Remove(arrival);
            }
            foreach (var e in engine.Step())
            {
                if (!seen.TryGetValue(e.RequestId, out var list)) seen[e.RequestId] = list = [];
                list.Add(e);
            }
            Assert.True(step < 1000, "the engine never finished");
        }
        return seen;
    }

    [Fact]
    public void EveryRequestGetsTheTokensItGetsAlone()
    {
        using var model = Model();
        var tokenizer = new ByteTokenizer();
        var alone = new Dictionary<string, List<GenerationEvent>>();
        foreach (var request in Requests)
        {
            using var single = new GenerationEngine(model, tokenizer, torch.CPU, maxBatch: 1);
            alone[request.Id] = Drive(single, [(0, request)])[request.Id];
        }

        // Three slots for six requests arriving over time: requests wait, join a running batch, and leave it.
        using var engine = new GenerationEngine(model, tokenizer, torch.CPU, maxBatch: 3);
        var batched = Drive(engine, Requests.Select((r, i) => (i * 2, r)));

        foreach (var request in Requests)
        {
            Assert.Equal(alone[request.Id].Select(e => e.Token), batched[request.Id].Select(e => e.Token));
            Assert.Equal(string.Concat(alone[request.Id].Select(e => e.Text)), string.Concat(batched[request.Id].Select(e => e.Text)));
            Assert.NotNull(batched[request.Id][^1].Finish);
        }
        Assert.Equal(batched["hot"].Select(e => e.Token), batched["same-seed"].Select(e => e.Token));
        Assert.Equal(2, batched["short"].Count(e => e.Token is not null));
        Assert.Equal(FinishReason.Length, batched["short"][^1].Finish);
    }

    // Fixed-shape steps (what CUDA graphs replay) run free slots along and attend over a padded window: every request
    // must still get the tokens eager decoding gives it.
    [Fact]
    public void FixedShapeDecodingGivesEveryRequestTheTokensOfEagerDecoding()
    {
        using var model = Model();
        var tokenizer = new ByteTokenizer();
        var arrivals = Requests.Select((r, i) => (i * 2, r)).ToArray();
        using var eager = new GenerationEngine(model, tokenizer, torch.CPU, maxBatch: 3, DecodeMode.Eager);
        var expected = Drive(eager, arrivals);
        using var forward = new LocalBatchForward(model, torch.CPU, 3, DecodeMode.FixedShapes);
        using var fixedShapes = new GenerationEngine(forward, tokenizer, 3);
        var actual = Drive(fixedShapes, arrivals);
        foreach (var request in Requests)
            Assert.Equal(expected[request.Id].Select(e => e.Token), actual[request.Id].Select(e => e.Token));
        Assert.InRange(forward.Decoder!.ShapeCount, 2, 4); // rows 1, 2 or 4 capped at 3 slots; one 64-position window
        Assert.False(forward.Decoder.Graphs);
    }

    [Fact]
    public void AFixedShapeStepGivesTheLogitsOfAnEagerStep()
    {
        using var model = Model(scale: 1);
        using var noGrad = torch.no_grad();
        using var eager = new LocalBatchForward(model, torch.CPU, 4, DecodeMode.Eager);
        using var fixedShapes = new LocalBatchForward(model, torch.CPU, 4, DecodeMode.FixedShapes);
        foreach (var forward in new[] { eager, fixedShapes })
        {
            forward.Forward([1], [5, 6, 7, 8, 9], 5, fresh: true);
            forward.Forward([2], [10, 11], 2, fresh: true);
        }
        for (int step = 0; step < 3; step++)
        {
            long[] tokens = [20 + step, 30 + step];
            var expected = eager.Forward([2, 1], tokens, 1, fresh: false);
            var actual = fixedShapes.Forward([2, 1], tokens, 1, fresh: false);
            AssertClose(expected, actual, $"step {step}");
        }
        Assert.Equal(eager.LengthOf(1), fixedShapes.LengthOf(1));
        Assert.Equal(8, fixedShapes.LengthOf(1));
    }

    [Fact]
    public void PromptsOfOneLengthArrivingTogetherArePrefilledTogetherAndGetTheirOwnTokens()
    {
        using var model = Model();
        var tokenizer = new ByteTokenizer();
        GenerationRequest[] same =
        [
            new("a", [1, 2, 3, 4], new SamplingOptions { MaxTokens = 10, Temperature = 0 }),
            new("b", [9, 8, 7, 6], new SamplingOptions { MaxTokens = 10, Temperature = 1.0, Seed = 2 }),
            new("c", [5, 5, 5, 5], new SamplingOptions { MaxTokens = 10, Temperature = 0.7, TopP = 0.9, Seed = 4 }),
        ];
        using var engine = new GenerationEngine(model, tokenizer, torch.CPU, maxBatch: 3);
        var together = Drive(engine, same.Select(r => (0, r)));
        foreach (var request in same)
        {
            using var single = new GenerationEngine(model, tokenizer, torch.CPU, maxBatch: 1);
            Assert.Equal(Drive(single, [(0, request)])[request.Id].Select(e => e.Token), together[request.Id].Select(e => e.Token));
        }
    }

    [Fact]
    public void ACancelledRequestFreesItsSlotForTheNext()
    {
        using var model = Model();
        using var engine = new GenerationEngine(model, new ByteTokenizer(), torch.CPU, maxBatch: 1);
        engine.Submit(new GenerationRequest("first", [1, 2, 3], new SamplingOptions { MaxTokens = 30, Temperature = 0 }));
        engine.Submit(new GenerationRequest("second", [4, 5], new SamplingOptions { MaxTokens = 3, Temperature = 0 }));
        Assert.Equal("first", Assert.Single(engine.Step()).RequestId);
        Assert.Equal(1, engine.Waiting);
        Assert.True(engine.Cancel("first"));
        Assert.False(engine.Cancel("first"));
        Assert.Equal("second", Assert.Single(engine.Step()).RequestId);
        Assert.Equal(0, engine.Waiting);
    }

    [Fact]
    public void RequestsThatCannotBeServedAreRefusedNamingTheField()
    {
        using var model = Model();
        using var engine = new GenerationEngine(model, new ByteTokenizer(), torch.CPU, maxBatch: 2);
        var options = new SamplingOptions { MaxTokens = 4 };
        Assert.Contains("prompt", Assert.Throws<ArgumentException>(() => engine.Submit(new GenerationRequest("a", new int[48], options))).Message);
        Assert.Contains("vocabulary", Assert.Throws<ArgumentException>(() => engine.Submit(new GenerationRequest("a", [300], options))).Message);
        engine.Submit(new GenerationRequest("a", [1], options));
        Assert.Contains("'a'", Assert.Throws<ArgumentException>(() => engine.Submit(new GenerationRequest("a", [1], options))).Message);
        Assert.Contains("temperature", Assert.Throws<ArgumentException>(() => engine.Submit(new GenerationRequest("b", [1], options with { Temperature = -1 }))).Message);
    }

    [Fact]
    public void TextThatMayStartAStopSequenceIsHeldBackAndNeverSent()
    {
        var text = new CompletionText(new ByteTokenizer(), ["\n\n", "END"]);
        Assert.Equal(("x", false), text.Add('x'));
        Assert.Equal(("", false), text.Add('\n'));      // could be the start of "\n\n"
        Assert.Equal(("\ny", false), text.Add('y'));    // it was not
        Assert.Equal(("", false), text.Add('E'));
        Assert.Equal(("", false), text.Add('N'));
        Assert.Equal(("", true), text.Add('D'));
        Assert.Equal("x\ny", text.Text);

        var unfinished = new CompletionText(new ByteTokenizer(), ["END"]);
        unfinished.Add('a');
        unfinished.Add('E');
        Assert.Equal("E", unfinished.Flush()); // the completion ended for another reason: the held text is sent
        Assert.Equal("aE", unfinished.Text);
    }
}
