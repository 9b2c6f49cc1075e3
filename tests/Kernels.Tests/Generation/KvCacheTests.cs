using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Generation;

public class KvCacheTests
{
    [Theory]
    [InlineData("learned")]
    [InlineData("rotary")]
    public void IncrementalDecodingGivesTheFullForwardLogits(string positions)
    {
        torch.manual_seed(4);
        var config = new ModelConfig { Layers = 4, DModel = 32, Heads = 4, DFf = 64, ContextLength = 16, Positions = positions };
        var moe = new MoEConfig { Experts = ExpertCounts.Parse("4,8"), Residual = true, DropTokens = false };
        using var model = new GptModel(config, moe, 50);
        model.eval();
        using var noGrad = torch.no_grad();
        var tokens = torch.randint(0, 50, [2, 12]);
        var full = model.Forward(tokens, RoutingContext.Inference, null, null);

        using var cache = new SlotKvCache(config.Layers, slots: 2, capacity: config.ContextLength);
        int[] rows = [0, 1];
        var prefill = model.Forward(tokens.narrow(1, 0, 5), RoutingContext.Inference, null, cache.Rows(rows));
        var pieces = new List<torch.Tensor> { prefill };
        pieces.Add(model.Forward(tokens.narrow(1, 5, 3), RoutingContext.Inference, null, cache.Rows(rows))); // several tokens after a history
        for (int t = 8; t < 12; t++) pieces.Add(model.Forward(tokens.narrow(1, t, 1), RoutingContext.Inference, null, cache.Rows(rows)));
        var incremental = torch.cat(pieces, 1);

        Assert.Equal(12, cache.LengthOf(0));
        Assert.True(incremental.allclose(full, rtol: 1e-4, atol: 1e-5), $"max difference {(incremental - full).abs().max().item<float>()}");
    }

    [Fact]
    public void PastPositionsDoNotSeeTheFuture()
    {
        torch.manual_seed(5);
        using var model = new GptModel(new ModelConfig { Layers = 2, DModel = 16, Heads = 2, DFf = 32, ContextLength = 8 }, new MoEConfig { Layers = new LayerPlacement("none", []) }, 20);
        model.eval();
        using var noGrad = torch.no_grad();
        var a = model.Forward(torch.tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }).view(1, 8), RoutingContext.Inference, null, null);
        var b = model.Forward(torch.tensor(new long[] { 1, 2, 3, 4, 9, 6, 7, 8 }).view(1, 8), RoutingContext.Inference, null, null);
        var change = (a - b).abs().amax([0, 2]);
        for (int i = 0; i < 4; i++) Assert.Equal(0f, change[i].item<float>());
        for (int i = 4; i < 8; i++) Assert.True(change[i].item<float>() > 0, $"position {i} ignores an earlier token");
    }
}
