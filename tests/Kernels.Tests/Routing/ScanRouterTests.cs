using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static Orleans.MoE.Kernels.Tests.Routing.RouterFixture;

namespace Orleans.MoE.Kernels.Tests.Routing;

/// <summary>The scan path must give exactly the table of the general sort-based path it replaces.</summary>
public class ScanRouterTests
{
    [Theory]
    [InlineData(1, 1, true, 1)]
    [InlineData(1, 4, true, 1)]
    [InlineData(2, 1, true, 1)]
    [InlineData(2, 2, true, 8)]
    [InlineData(3, 2, true, 1)]
    [InlineData(1, 2, false, 1)]
    [InlineData(2, 1, false, 1)]
    public void ScanAndSortPathsGiveTheSameTable(int topK, int groups, bool dropTokens, int alignment)
    {
        torch.manual_seed(21 + topK * 7 + groups);
        var settings = new GateSettings { Experts = 6, TopK = topK, EvalCapacityFactor = 0.8, MinCapacity = 0, DropTokens = dropTokens, CapacityAlignment = alignment };
        using var router = new TopKRouter(16, settings, 0) { PackDropless = false };
        router.eval();
        var x = torch.randn(48, 16);
        router.AllowScanPath = false;
        var sorted = router.Route(x, groups, RoutingContext.Inference);
        router.AllowScanPath = true;
        var scanned = router.Route(x, groups, RoutingContext.Inference);

        Assert.Equal(sorted.Capacity, scanned.Capacity);
        Assert.Equal(Longs(sorted.Experts), Longs(scanned.Experts));
        Assert.Equal(Longs(sorted.Destination), Longs(scanned.Destination));
        Assert.Equal(Floats(sorted.Weights), Floats(scanned.Weights), new FloatTolerance(1e-6f));
        Assert.Equal(Longs(sorted.Load), Longs(scanned.Load));
        Assert.Equal(Longs(sorted.Kept), Longs(scanned.Kept));
        Assert.Equal(sorted.AuxLoss.item<float>(), scanned.AuxLoss.item<float>(), 5);
        Assert.Equal(sorted.ZLoss.item<float>(), scanned.ZLoss.item<float>(), 4);
    }

    // The grouped GEMM's table: group ends on the device instead of sizes on the host, each expert's rows starting at
    // a multiple of the alignment; every (token, choice) keeps its place inside its expert's rows.
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 1, 8)]
    [InlineData(1, 3, 8)]
    [InlineData(2, 2, 1)]
    public void DeviceGroupEndsKeepEveryRowInsideItsExpertsGroup(int topK, int groups, int alignment)
    {
        torch.manual_seed(31 + topK + groups + alignment);
        var settings = new GateSettings { Experts = 6, TopK = topK, DropTokens = false };
        var x = torch.randn(48, 16);
        var weight = torch.randn(6, 16);
        var host = ScanRouter.Route(x, weight, settings, groups, training: true, packDropless: true);
        var device = ScanRouter.Route(x, weight, settings, groups, training: true, packDropless: true, groupAlignment: alignment);

        Assert.Null(device.SegmentSizes);
        Assert.Equal(0, device.Capacity);
        Assert.Equal(48L * topK + (alignment - 1) * 6L, device.BufferRows);
        var sizes = host.SegmentSizes!;
        var ends = Longs(device.SegmentEnds!);
        var starts = new long[6];
        long at = 0, hostAt = 0;
        var hostStarts = new long[6];
        for (int e = 0; e < 6; e++)
        {
            starts[e] = at;
            hostStarts[e] = hostAt;
            at += (sizes[e] + alignment - 1) / alignment * alignment;
            hostAt += sizes[e];
            Assert.Equal(at, ends[e]);
        }
        var experts = Longs(host.Experts);
        var hostRows = Longs(host.Destination);
        var deviceRows = Longs(device.Destination);
        for (int i = 0; i < experts.Length; i++)
            Assert.Equal(hostRows[i] - hostStarts[experts[i]], deviceRows[i] - starts[experts[i]]);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    public void PackedDroplessLayerEqualsThePaddedOne(int topK, int groups)
    {
        torch.manual_seed(8);
        var settings = new GateSettings { Experts = 5, TopK = topK, MinCapacity = 0, DropTokens = false };
        var layer = new MoELayer(0, 12, 20, settings, 0.1, groupTokens: 40 / groups);
        layer.eval();
        var x = torch.randn(2, 20, 12, requires_grad: true);
        layer.Router.PackDropless = true;
        var packed = layer.forward(x);
        var packedGrad = torch.autograd.grad([packed.square().sum()], [x])[0];
        layer.Router.PackDropless = false;
        var padded = layer.forward(x);
        var paddedGrad = torch.autograd.grad([padded.square().sum()], [x])[0];
        Assert.True(packed.allclose(padded, rtol: 1e-5, atol: 1e-6));
        Assert.True(packedGrad.allclose(paddedGrad, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void CapacityAlignmentRoundsUp() => Assert.Equal(32, Capacity.Compute(512, 32, 1, 1.25, 4, alignment: 16));
}
