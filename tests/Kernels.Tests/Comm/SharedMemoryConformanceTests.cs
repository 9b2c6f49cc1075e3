using Orleans.MoE.CommConformance;
using Orleans.MoE.Kernels.Comm;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Comm;

/// <summary>The communicator conformance checks on the in-process backend: four ranks, one thread each.</summary>
public class SharedMemoryConformanceTests
{
    [Fact]
    public void EveryCollectiveConformsOnFourThreads()
    {
        var group = new SharedMemoryGroup(4, TimeSpan.FromSeconds(60));
        var results = RankThreads.Run(4, rank => CommunicatorChecks.RunAll(group.Join(rank), torch.CPU), TimeSpan.FromMinutes(2));
        ConformanceAssert.AllPassed(results.SelectMany(r => r), 4);
    }

    [Fact]
    public void OneFailingRankAbortsTheOthersQuickly()
    {
        var group = new SharedMemoryGroup(4, TimeSpan.FromSeconds(60));
        var results = RankThreads.Run(4, rank => CommunicatorChecks.AbortWhenOneRankFails(group.Join(rank), torch.CPU, TimeSpan.FromSeconds(10)), TimeSpan.FromMinutes(1));
        ConformanceAssert.AllPassed(results, 4);
    }
}
