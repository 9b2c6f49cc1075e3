namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Runs one body per rank on its own thread over a <see cref="SharedMemoryGroup"/> (the embedded multi-rank
/// mode and the tests). A rank that throws aborts the group, so the others stop at their next collective; the
/// first failure is rethrown once all threads have ended.
/// </summary>
public static class ThreadRanks
{
    public static T[] Run<T>(int world, Func<ICommunicator, T> body, TimeSpan? timeout = null)
    {
        var group = new SharedMemoryGroup(world, timeout);
        var results = new T[world];
        var failures = new Exception?[world];
        var threads = Enumerable.Range(0, world).Select(rank => new Thread(() =>
        {
            try
            {
                using var communicator = group.Join(rank);
                results[rank] = body(communicator);
            }
            catch (Exception e)
            {
                failures[rank] = e;
                group.Abort(e as CommunicatorAbortedException ?? new CommunicatorAbortedException($"rank {rank} failed: {e.Message}", e));
            }
        })
        { Name = $"moe-rank-{rank}", IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        // The rank that failed first is the one whose exception is not the abort it caused in the others.
        var cause = failures.FirstOrDefault(f => f is not null and not CommunicatorAbortedException) ?? failures.FirstOrDefault(f => f is not null);
        if (cause is not null) throw new AggregateException($"a rank of {world} failed: {cause.Message}", cause);
        return results;
    }
}
