using Orleans.MoE.Kernels.Routing;

namespace Orleans.MoE.Kernels.Tests.Routing;

public class CapacityTests
{
    [Theory]
    [InlineData(8, 4, 1, 1.0, 0, 2)]      // 8 tokens / 4 experts
    [InlineData(8, 4, 2, 1.0, 0, 4)]      // top-2 doubles the slots
    [InlineData(10, 4, 1, 1.25, 0, 4)]    // ⌈3.125⌉
    [InlineData(4096, 32, 1, 1.25, 4, 160)] // exact: 1.25 · 128 must not round up to 161
    [InlineData(4, 4, 1, 1.0, 4, 4)]      // the minimum capacity wins
    public void CapacityIsCeilOfShareTimesFactorWithMinimum(int tokens, int experts, int k, double factor, int min, int expected) =>
        Assert.Equal(expected, Capacity.Compute(tokens, experts, k, factor, min));
}
