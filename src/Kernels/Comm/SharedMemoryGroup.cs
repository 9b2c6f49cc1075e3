using System.Collections.Concurrent;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Ranks that live in one process (threads, or silos of one process) and exchange tensors by reading each other's
/// memory. A collective is two barrier phases: every rank posts its arguments, then reads what it needs from the
/// others, then waits until all have read before it may change its own tensors again. One rank's failure (or
/// a barrier that waits past <see cref="Timeout"/>) aborts the group, and every rank's next call throws.
/// </summary>
public sealed class SharedMemoryGroup
{
    readonly Barrier barrier;
    readonly CancellationTokenSource abort = new();
    readonly object?[] slots;
    readonly ConcurrentDictionary<(int Split, int Color), SharedMemoryGroup> children = new();
    readonly ConcurrentDictionary<(int From, int To), BlockingCollection<TorchSharp.torch.Tensor>> mailboxes = new();
    Exception? abortCause;

    public SharedMemoryGroup(int size, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        Timeout = timeout ?? TimeSpan.FromMinutes(10);
        barrier = new Barrier(size);
        slots = new object?[size];
    }

    public int Size { get; }

    /// <summary>How long a rank waits for the others at one phase before it declares the group dead.</summary>
    public TimeSpan Timeout { get; }

    public bool IsAborted => abort.IsCancellationRequested;

    /// <summary>The communicator of one rank; each rank joins once, from the thread that will use it.</summary>
    public ICommunicator Join(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, Size);
        return new SharedMemoryCommunicator(this, rank);
    }

    /// <summary>Makes every rank's current and next call fail with <paramref name="cause"/>.</summary>
    public void Abort(Exception cause)
    {
        Interlocked.CompareExchange(ref abortCause, cause, null);
        abort.Cancel();
        foreach (var child in children.Values) child.Abort(cause);
    }

    internal void Post(int rank, object value) => slots[rank] = value;

    internal T Read<T>(int rank) => (T)slots[rank]!;

    /// <summary>One barrier phase; throws when the group is (or becomes) aborted or the wait times out.</summary>
    internal void Wait()
    {
        ThrowIfAborted();
        bool arrived;
        try
        {
            arrived = barrier.SignalAndWait(Timeout, abort.Token);
        }
        catch (OperationCanceledException)
        {
            throw Aborted();
        }
        if (!arrived)
        {
            var late = new CommunicatorAbortedException($"a shared-memory rank waited {Timeout.TotalSeconds:0} s for the other {Size - 1}; the group is aborted");
            Abort(late);
            throw late;
        }
    }

    internal void ThrowIfAborted()
    {
        if (abort.IsCancellationRequested) throw Aborted();
    }

    internal CancellationToken AbortToken => abort.Token;

    internal SharedMemoryGroup Child(int split, int color, int size) =>
        children.GetOrAdd((split, color), _ => new SharedMemoryGroup(size, Timeout));

    internal BlockingCollection<TorchSharp.torch.Tensor> Mailbox(int from, int to) =>
        mailboxes.GetOrAdd((from, to), _ => new BlockingCollection<TorchSharp.torch.Tensor>());

    CommunicatorAbortedException Aborted() => abortCause as CommunicatorAbortedException
        ?? new CommunicatorAbortedException($"the shared-memory group was aborted: {abortCause?.Message ?? "by a rank"}", abortCause);
}
