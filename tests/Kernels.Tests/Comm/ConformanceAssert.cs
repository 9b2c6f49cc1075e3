using Orleans.MoE.CommConformance;

namespace Orleans.MoE.Kernels.Tests.Comm;

static class ConformanceAssert
{
    /// <summary>Every rank reported every check, and none failed; the message lists each failure with its rank.</summary>
    public static void AllPassed(IEnumerable<CheckResult> results, int ranks)
    {
        var all = results.ToList();
        Assert.Equal(ranks, all.Select(r => r.Rank).Distinct().Count());
        var failed = all.Where(r => !r.Passed).Select(r => $"rank {r.Rank}, {r.Name}: {r.Error}").ToList();
        Assert.True(failed.Count == 0, string.Join(Environment.NewLine, failed));
    }
}
