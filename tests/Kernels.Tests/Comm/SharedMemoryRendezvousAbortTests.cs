using System.Diagnostics;
using Orleans.MoE.Kernels.Comm;

namespace Orleans.MoE.Kernels.Tests.Comm;

/// <summary>A generation's group aborted by its key (a member silo was lost): the ranks waiting for it fail at once.</summary>
public class SharedMemoryRendezvousAbortTests
{
    [Fact]
    public async Task RanksBlockedOnALostRankThrowAtOnceWhenTheGroupIsAbortedByKey()
    {
        string key = $"job-{Guid.NewGuid():N}/g1";
        // Three of four ranks reach a barrier; the fourth never comes (its silo died). The timeout is far away.
        var survivors = Enumerable.Range(0, 3).Select(rank => Task.Run(() =>
        {
            var world = SharedMemoryRendezvous.Join(key, 4, rank, TimeSpan.FromMinutes(10));
            world.Barrier();
        })).ToArray();
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.All(survivors, t => Assert.False(t.IsCompleted));

        var clock = Stopwatch.StartNew();
        Assert.True(SharedMemoryRendezvous.Abort(key, new InvalidOperationException("silo s3 left the cluster")));
        foreach (var survivor in survivors)
        {
            var e = await Assert.ThrowsAsync<CommunicatorAbortedException>(() => survivor);
            Assert.Contains("silo s3 left the cluster", e.Message);
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the ranks took {clock.Elapsed} to notice the abort");
        Assert.False(SharedMemoryRendezvous.Abort($"job-{Guid.NewGuid():N}/g1", new InvalidOperationException("none")));
    }
}
