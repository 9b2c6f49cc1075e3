namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// The NCCL communicators of this process that fail together: the ranks of an in-process group and the groups
/// split from them. Once one fails, all are aborted (ncclCommAbort also stops their kernels, which would otherwise
/// spin on the GPU waiting for the failed rank), and every later call throws.
/// </summary>
sealed class NcclAbortScope
{
    readonly List<NcclCommunicator> members = [];
    Exception? cause;

    public bool IsAborted => Volatile.Read(ref cause) is not null;

    public void Add(NcclCommunicator communicator)
    {
        lock (members) members.Add(communicator);
    }

    public void Abort(Exception reason)
    {
        if (Interlocked.CompareExchange(ref cause, reason, null) is not null) return;
        NcclCommunicator[] all;
        lock (members) all = [.. members];
        foreach (var member in all) member.AbortHandle();
    }

    public void ThrowIfAborted()
    {
        var reason = Volatile.Read(ref cause);
        if (reason is null) return;
        throw reason as CommunicatorAbortedException ?? new CommunicatorAbortedException($"the NCCL group was aborted: {reason.Message}", reason);
    }
}
