using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Serving;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>Rank arithmetic of a serving replica and the errors for models that do not fit a layout.</summary>
public class ServingLayoutTests
{
    [Fact]
    public void TensorSlicingGroupsAreConsecutiveRanks()
    {
        var layout = new ServingLayout(2, 4);
        Assert.Equal(8, layout.WorldSize);
        Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1], Enumerable.Range(0, 8).Select(layout.TensorRank));
        Assert.Equal([0, 0, 1, 1, 2, 2, 3, 3], Enumerable.Range(0, 8).Select(layout.ExpertRank));
    }

    [Fact]
    public void MoreRanksThanExpertsSliceEachExpert()
    {
        var layout = new ServingLayout(1, 8);
        Assert.Equal(new ExpertShard(2, 1, 4, 1, 2), layout.ShardOf(5, 4));
        Assert.Equal(new ExpertShard(5, 1, 8), layout.ShardOf(5, 8));
        Assert.Equal(new ExpertShard(4, 2, 8), new ServingLayout(2, 4).ShardOf(2, 8));
    }

    [Theory]
    [InlineData(3, 1, "model.heads")]
    [InlineData(1, 3, "does not divide a layer's 4 experts")]
    [InlineData(1, 6, "4 experts do not divide expert_parallel = 6")]
    public void ALayoutTheModelDoesNotFitIsRefused(int tensorSlicing, int expertParallel, string named)
    {
        var config = ServingHarness.Config;
        var error = Assert.Throws<ArgumentException>(() => new ServingLayout(tensorSlicing, expertParallel).Validate(config.Model, config.Moe));
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void ExpertSlicesMustSplitTheHiddenUnits()
    {
        var config = ServingHarness.Config;
        var moe = config.Moe with { ExpertFfn = 6 };
        var error = Assert.Throws<ArgumentException>(() => new ServingLayout(1, 16).Validate(config.Model, moe));
        Assert.Contains("6 hidden units into 4", error.Message);
    }

    [Fact]
    public void TheReplicaMustHaveTheLayoutsRanks()
    {
        var error = Assert.Throws<AggregateException>(() => ThreadRanks.Run(2, replica => ServingGroups.Create(replica, new ServingLayout(2, 2))));
        Assert.Contains("2 × expert_parallel 2 = 4 ranks, but the replica has 2", error.InnerException!.Message);
    }
}
