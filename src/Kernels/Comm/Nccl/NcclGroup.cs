namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// Several GPUs of this process as the ranks of one NCCL communicator (one thread per GPU). Each rank joins from
/// its own thread, with its GPU current, exactly as separate processes would; the unique id is shared in memory.
/// The ranks share an abort scope: one rank's failure aborts all of them.
/// </summary>
public static class NcclGroup
{
    /// <summary>Rank i runs on <paramref name="devices"/>[i]. Blocks until all have joined (at most <paramref name="timeout"/>).</summary>
    public static NcclCommunicator[] Create(IReadOnlyList<int> devices, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromMinutes(5);
        var id = NcclUniqueId.Create();
        var scope = new NcclAbortScope();
        var ranks = new NcclCommunicator?[devices.Count];
        var failures = new Exception?[devices.Count];
        var threads = devices.Select((device, rank) => new Thread(() =>
        {
            try
            {
                ranks[rank] = NcclCommunicator.Create(id, rank, devices.Count, device, scope, limit);
            }
            catch (Exception e)
            {
                failures[rank] = e;
            }
        })
        { IsBackground = true, Name = $"nccl-init-{rank}" }).ToList();
        threads.ForEach(t => t.Start());
        bool joined = threads.All(t => t.Join(limit));
        var failed = failures.OfType<Exception>().ToList();
        if (joined && failed.Count == 0) return ranks.Select(r => r!).ToArray();
        scope.Abort(new CommunicatorAbortedException("NCCL group creation failed"));
        if (!joined) failed.Add(new TimeoutException($"ncclCommInitRank did not return within {limit.TotalSeconds:0} s on every GPU"));
        throw new AggregateException($"could not create an NCCL group over GPUs [{string.Join(", ", devices)}]", failed);
    }
}
