namespace Orleans.MoE.CommConformance;

/// <summary>Runs one body per rank, each on its own thread (TorchSharp scopes and the CUDA current device are per thread).</summary>
public static class RankThreads
{
    /// <summary>Every rank's result, in rank order; an exception a rank threw is returned, not rethrown.</summary>
    public static T[] Run<T>(int ranks, Func<int, T> body, TimeSpan timeout)
    {
        var results = new T[ranks];
        var threads = Enumerable.Range(0, ranks).Select(rank => new Thread(() => results[rank] = body(rank))
        { IsBackground = true, Name = $"rank-{rank}" }).ToList();
        threads.ForEach(t => t.Start());
        if (!threads.All(t => t.Join(timeout))) throw new TimeoutException($"a rank thread ran past {timeout.TotalSeconds:0} s");
        return results;
    }
}
