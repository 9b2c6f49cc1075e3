using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>The console's --scaling, --on-loss and --handoff values, and the errors that name a bad one.</summary>
public class ScalingPolicyTests
{
    [Fact]
    public void TheConsoleValuesParseToThePolicy()
    {
        var policy = ScalingPolicy.Parse("grow:4", "wait", "checkpoint");
        Assert.Equal((GrowthPolicy.Grow, 4, LossPolicy.Wait, HandoffPolicy.Checkpoint), (policy.OnJoin, policy.MaxReplicas, policy.OnLoss, policy.Handoff));
        Assert.Equal(HandoffPolicy.DataPlane, ScalingPolicy.Parse("grow", "shrink").Handoff);
    }

    [Theory]
    [InlineData("grow:0", "shrink", "data-plane", "scaling 'grow:0'")]
    [InlineData("grow", "retry", "data-plane", "on-loss 'retry'")]
    [InlineData("grow", "shrink", "nfs", "handoff 'nfs' is not data-plane or checkpoint")]
    public void ABadValueIsRefusedByName(string onJoin, string onLoss, string handoff, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => ScalingPolicy.Parse(onJoin, onLoss, handoff)).Message);
}
