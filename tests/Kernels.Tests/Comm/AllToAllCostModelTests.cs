using Orleans.MoE.Kernels.Comm.CostModel;

namespace Orleans.MoE.Kernels.Tests.Comm;

public class AllToAllCostModelTests
{
    const double KiB = 1 << 10, MiB = 1 << 20;

    static AllToAllCostModel Model(double nicBytesPerSecond = 50e9, bool overlap = false)
    {
        var link = IntraNodeFit.Fit(Calibration.H200NvLink).Link;
        return new AllToAllCostModel(new AllToAllCostParameters(
            link, new InterNodeLink(3e-6, nicBytesPerSecond), link.PerPeerSeconds, 2.5e12, 5e-6, overlap));
    }

    [Theory]
    [InlineData(16 * KiB)]
    [InlineData(256 * MiB)]
    public void OnOneNodeHierarchicalIsFlatPlusTwoTransforms(double bytes)
    {
        var model = Model();
        var node = new ClusterShape(8, 8);

        var flat = model.Flat(node, bytes);
        var hierarchical = model.Hierarchical(node, bytes);

        Assert.Equal(model.Parameters.Intra.AllToAllSeconds(8, bytes), flat.TotalSeconds, 1e-12);
        Assert.Equal(2 * (5e-6 + 2 * bytes / 2.5e12), hierarchical.TransformSeconds, 1e-12);
        Assert.Equal(flat.TotalSeconds + hierarchical.TransformSeconds, hierarchical.TotalSeconds, 1e-12);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AtAThousandGpusSmallMessagesFavourHierarchical(bool overlap)
    {
        var model = Model(overlap: overlap);
        var cluster = new ClusterShape(1024, 8);

        Assert.True(model.Hierarchical(cluster, 16 * KiB).TotalSeconds < model.Flat(cluster, 16 * KiB).TotalSeconds);
    }

    [Fact]
    public void TheSpeedupGrowsWithTheClusterForSmallMessages()
    {
        var model = Model();
        var speedups = new[] { 16, 32, 64, 128, 256, 512, 1024 }
            .Select(g => new ClusterShape(g, 8))
            .Select(c => model.Flat(c, 64 * KiB).TotalSeconds / model.Hierarchical(c, 64 * KiB).TotalSeconds).ToList();

        Assert.Equal(speedups.Order(), speedups);
    }

    [Fact]
    public void TheSpeedupShrinksAsMessagesGrow()
    {
        // Serial latency: both times are linear in the size and flat's slope is the smaller (it moves each byte once).
        var model = Model();
        var cluster = new ClusterShape(1024, 8);
        var speedups = Sizes.Select(s => model.Flat(cluster, s).TotalSeconds / model.Hierarchical(cluster, s).TotalSeconds).ToList();

        Assert.Equal(speedups.OrderDescending(), speedups);
    }

    [Fact]
    public void WithOverlappedLatencyTheWinnerChangesOnce()
    {
        // Past the crossover the ratio creeps back towards its bandwidth-only limit, so only the winner is monotonic.
        var model = Model(overlap: true);
        var cluster = new ClusterShape(1024, 8);
        var hierarchicalWins = Sizes.Select(s => model.Hierarchical(cluster, s).TotalSeconds < model.Flat(cluster, s).TotalSeconds).ToList();

        Assert.True(hierarchicalWins[0]);
        Assert.False(hierarchicalWins[^1]);
        Assert.Equal(1, hierarchicalWins.Zip(hierarchicalWins.Skip(1)).Count(pair => pair.First != pair.Second));
    }

    static readonly double[] Sizes = [64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB, 4096 * MiB];

    [Fact]
    public void HugeMessagesOnAFastNicGoFlat()
    {
        // 8 × 400 Gb/s NICs for each GPU: the network stops being the bottleneck that both versions share, so
        // hierarchical's second pass over NVLink and its copies dominate.
        var model = Model(nicBytesPerSecond: 400e9, overlap: true);
        var cluster = new ClusterShape(1024, 8);

        Assert.True(model.Flat(cluster, 4096 * MiB).TotalSeconds < model.Hierarchical(cluster, 4096 * MiB).TotalSeconds);
    }

    [Fact]
    public void TheCrossoverSizeGrowsWithTheCluster()
    {
        var model = Model();
        var crossovers = new[] { 32, 64, 128, 256, 512, 1024 }
            .Select(g => AllToAllCrossover.HierarchicalFasterBelow(model, new ClusterShape(g, 8)) ?? 0).ToList();

        Assert.All(crossovers, c => Assert.True(c > 0));
        Assert.Equal(crossovers.Order(), crossovers);
        // Either side of the reported size the winner changes.
        var cluster = new ClusterShape(1024, 8);
        double at = crossovers[^1];
        Assert.True(model.Hierarchical(cluster, at * 0.99).TotalSeconds < model.Flat(cluster, at * 0.99).TotalSeconds);
        Assert.True(model.Hierarchical(cluster, at * 1.01).TotalSeconds > model.Flat(cluster, at * 1.01).TotalSeconds);
    }

    [Theory]
    [InlineData("64KB", 64 * KiB)]
    [InlineData("1 MiB", MiB)]
    [InlineData("256M", 256 * MiB)]
    [InlineData("4096", 4096)]
    public void SizesParseInBinaryUnits(string text, double bytes) => Assert.Equal(bytes, ByteSize.Parse(text));
}
