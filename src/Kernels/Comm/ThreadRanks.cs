namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Runs one body per rank, each on its own thread (the embedded multi-rank mode, the tests and the benchmarks).
/// The first failure is rethrown once all threads have ended.
/// </summary>
public static class ThreadRanks
{
    /// <summary>
    /// Ranks over a new <see cref="SharedMemoryGroup"/>: a rank that throws aborts the group, so the others stop at
    /// their next collective instead of waiting for it.
    /// </summary>
    public static T[] Run<T>(int world, Func<ICommunicator, T> body, TimeSpan? timeout = null)
    {
        var group = new SharedMemoryGroup(world, timeout);
        var communicators = Enumerable.Range(0, world).Select(group.Join).ToArray();
        return Run(communicators, communicator =>
        {
            try
            {
                using (communicator) return body(communicator);
            }
            catch (Exception e)
            {
                group.Abort(e as CommunicatorAbortedException ?? new CommunicatorAbortedException($"rank {communicator.Rank} failed: {e.Message}", e));
                throw;
            }
        });
    }

    /// <summary>One thread per communicator (NCCL ranks of one process, say); results in rank order.</summary>
    public static T[] Run<T>(IReadOnlyList<ICommunicator> communicators, Func<ICommunicator, T> body)
    {
        var results = new T[communicators.Count];
        var failures = new Exception?[communicators.Count];
        var threads = communicators.Select((communicator, rank) => new Thread(() =>
        {
            try
            {
                results[rank] = body(communicator);
            }
            catch (Exception e)
            {
                failures[rank] = e;
            }
        })
        { Name = $"moe-rank-{rank}", IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        // The rank that failed first is the one whose exception is not the abort it caused in the others.
        var cause = failures.FirstOrDefault(f => f is not null and not CommunicatorAbortedException) ?? failures.FirstOrDefault(f => f is not null);
        if (cause is not null) throw new AggregateException($"a rank of {communicators.Count} failed: {cause.Message}", cause);
        return results;
    }
}
