using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Layers;

/// <summary>The routing a captured CUDA graph needs (nothing read back) must compute what dropless serving computes.</summary>
public class SyncFreeMoETests
{
    // 2 tokens × k against 16 experts take the gathered-weights path; 24 tokens the padded buffer with room for all.
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 2)]
    [InlineData(1, 24)]
    [InlineData(2, 24)]
    public void SyncFreeLayerEqualsThePackedDroplessOne(int topK, int tokens)
    {
        torch.manual_seed(5 + topK + tokens);
        var settings = new GateSettings { Experts = 16, TopK = topK, EvalCapacityFactor = 0.5, MinCapacity = 0, DropTokens = true };
        using var layer = new MoELayer(0, 12, 20, settings, 0.1, groupTokens: 0);
        layer.eval();
        layer.Router.NeverDrop = true;
        using var noGrad = torch.no_grad();
        var x = torch.randn(tokens, 12) * 3;
        var packed = layer.forward(x);
        layer.Context = RoutingContext.SyncFreeInference;
        var syncFree = layer.forward(x);
        Assert.True(syncFree.allclose(packed, rtol: 1e-5, atol: 1e-6), $"max difference {(syncFree - packed).abs().max().item<float>()}");
    }

    [Fact]
    public void RoomForEveryTokenKeepsEveryChoiceWithoutReadingLoads()
    {
        torch.manual_seed(3);
        var settings = new GateSettings { Experts = 4, TopK = 2, DropTokens = false };
        var x = torch.randn(10, 8);
        var table = ScanRouter.Route(x, torch.randn(4, 8), settings, groups: 2, training: false, packDropless: true, roomForEveryToken: true);
        Assert.Equal(ExpertBufferLayout.Padded, table.Layout);
        Assert.Null(table.SegmentSizes);
        Assert.Equal(5, table.Capacity);
        // Every (token, choice) has its own row, inside the buffer.
        var rows = table.Destination.data<long>().ToArray();
        Assert.Equal(rows.Length, rows.Distinct().Count());
        Assert.All(rows, r => Assert.InRange(r, 0, table.BufferRows - 1));
    }
}
