using System.Diagnostics;
using Orleans.MoE.Kernels.Native;

namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// Keeps a dead or stuck peer from hanging this rank. NCCL calls return once enqueued, and a collective whose peer
/// never arrives spins on the GPU forever; so every enqueued call is followed by a CUDA event, and a background
/// thread aborts the group when the oldest unfinished event (or a host call still inside NCCL) is older than the
/// timeout, or when NCCL reports an asynchronous error (a peer's connection broke).
/// </summary>
sealed class NcclWatchdog : IDisposable
{
    static readonly TimeSpan Period = TimeSpan.FromMilliseconds(50);

    readonly NcclCommunicator owner;
    readonly TimeSpan timeout;
    readonly Queue<(IntPtr Event, long Enqueued)> pending = new();
    readonly Stack<IntPtr> spare = new();
    readonly CancellationTokenSource stop = new();
    readonly Thread thread;
    long hostCallSince;

    public NcclWatchdog(NcclCommunicator owner, TimeSpan timeout)
    {
        this.owner = owner;
        this.timeout = timeout;
        thread = new Thread(Watch) { IsBackground = true, Name = $"nccl-watchdog-{owner.Rank}" };
        thread.Start();
    }

    /// <summary>Marks the start of a host call into NCCL that may block (group end, split).</summary>
    public void HostCallStarted() => Volatile.Write(ref hostCallSince, Stopwatch.GetTimestamp());

    public void HostCallEnded() => Volatile.Write(ref hostCallSince, 0);

    /// <summary>Records an event after the work just enqueued; the caller has made the device current.</summary>
    public void Track()
    {
        lock (pending)
        {
            if (!spare.TryPop(out var cudaEvent)) CudaDriver.Check(CudaDriver.cuEventCreate(out cudaEvent, CudaDriver.EventWithoutTiming), "cuEventCreate");
            CudaDriver.Check(CudaDriver.cuEventRecord(cudaEvent, CudaDriver.DefaultStream), "cuEventRecord");
            pending.Enqueue((cudaEvent, Stopwatch.GetTimestamp()));
        }
    }

    void Watch()
    {
        owner.MakeDeviceCurrent();
        while (!stop.Token.WaitHandle.WaitOne(Period))
        {
            string? problem = owner.AsyncError() ?? Overdue();
            if (problem is not null)
            {
                owner.Abort(new CommunicatorAbortedException($"NCCL rank {owner.Rank} of {owner.Size}: {problem}; the group is aborted"));
                return;
            }
        }
    }

    string? Overdue()
    {
        long since = Volatile.Read(ref hostCallSince);
        if (since != 0 && Stopwatch.GetElapsedTime(since) > timeout)
            return $"a host call into NCCL has not returned after {timeout.TotalSeconds:0} s";
        lock (pending)
        {
            while (pending.TryPeek(out var head))
            {
                if (CudaDriver.cuEventQuery(head.Event) != CudaDriver.NotReady)
                {
                    spare.Push(pending.Dequeue().Event);
                    continue;
                }
                if (Stopwatch.GetElapsedTime(head.Enqueued) > timeout)
                    return $"a collective has not finished on the GPU after {timeout.TotalSeconds:0} s (a peer is dead or stuck)";
                break;
            }
        }
        return null;
    }

    public void Dispose()
    {
        stop.Cancel();
        if (Thread.CurrentThread != thread) thread.Join();
        lock (pending)
        {
            foreach (var cudaEvent in pending.Select(p => p.Event).Concat(spare)) CudaDriver.cuEventDestroy_v2(cudaEvent);
            pending.Clear();
            spare.Clear();
        }
        stop.Dispose();
    }
}
