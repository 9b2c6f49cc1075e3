using System.Diagnostics;
using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// One rank of an NCCL communicator, bound to one GPU. Calls may come from any thread: each makes this rank's GPU
/// current first. Work is enqueued on the legacy default stream and the call returns; read results with TorchSharp
/// (same stream) or wait with <see cref="Synchronize(TimeSpan)"/>. A watchdog aborts the group when a collective
/// does not finish within <see cref="Timeout"/> or NCCL reports an error, so a dead peer fails the others with
/// <see cref="CommunicatorAbortedException"/> instead of hanging them.
/// </summary>
public sealed class NcclCommunicator : ICommunicator
{
    readonly object enqueueGate = new();
    readonly object handleGate = new();
    readonly NcclAbortScope scope;
    readonly NcclWatchdog watchdog;
    IntPtr comm;
    Tensor? barrierFlag;

    NcclCommunicator(IntPtr comm, int device, NcclAbortScope scope, TimeSpan timeout)
    {
        this.comm = comm;
        Device = device;
        this.scope = scope;
        Timeout = timeout;
        Check(NcclNative.ncclCommUserRank(comm, out int rank), "ncclCommUserRank");
        Check(NcclNative.ncclCommCount(comm, out int size), "ncclCommCount");
        Rank = rank;
        Size = size;
        scope.Add(this);
        watchdog = new NcclWatchdog(this, timeout);
    }

    public int Rank { get; }
    public int Size { get; }
    public string Backend => "nccl";

    /// <summary>The CUDA device ordinal this rank runs on.</summary>
    public int Device { get; }

    /// <summary>How long a collective may take on the GPU before the group is declared dead.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Joins the communicator that <paramref name="id"/> names as <paramref name="rank"/> of <paramref name="size"/>
    /// (one process per GPU, or one thread per GPU). Blocks until every rank has joined.
    /// </summary>
    public static NcclCommunicator Create(NcclUniqueId id, int rank, int size, int device, TimeSpan? timeout = null) =>
        Create(id, rank, size, device, new NcclAbortScope(), timeout ?? TimeSpan.FromMinutes(5));

    internal static NcclCommunicator Create(NcclUniqueId id, int rank, int size, int device, NcclAbortScope scope, TimeSpan timeout)
    {
        CudaDriver.MakeCurrent(device);
        int result = NcclNative.ncclCommInitRank(out IntPtr comm, size, id, rank);
        if (result != NcclNative.Success) throw new InvalidOperationException($"ncclCommInitRank (rank {rank} of {size}, GPU {device}) failed: {NcclNative.Describe(result, 0)}");
        return new NcclCommunicator(comm, device, scope, timeout);
    }

    public void AllToAll(Tensor send, Tensor receive, long[]? sendRows = null, long[]? receiveRows = null) => Guarded(() =>
    {
        var sent = RowSplits.Resolve(send, sendRows, Size, "all-to-all send");
        var received = RowSplits.Resolve(receive, receiveRows, Size, "all-to-all receive");
        RequireSameRows(send, receive, "all-to-all");
        long rowBytes = RowSplits.RowElements(send) * send.ElementSize;
        IntPtr from = Pointer(send, "all-to-all send"), to = Pointer(receive, "all-to-all receive");
        long[] sendAt = RowSplits.Offsets(sent), receiveAt = RowSplits.Offsets(received);
        Enqueue("all-to-all", grouped: true, () =>
        {
            for (int peer = 0; peer < Size; peer++)
            {
                if (sent[peer] > 0)
                    Check(NcclNative.ncclSend(from + (nint)(sendAt[peer] * rowBytes), (nuint)(sent[peer] * rowBytes), NcclDataTypes.Uint8, peer, comm, CudaDriver.DefaultStream), "ncclSend");
                if (received[peer] > 0)
                    Check(NcclNative.ncclRecv(to + (nint)(receiveAt[peer] * rowBytes), (nuint)(received[peer] * rowBytes), NcclDataTypes.Uint8, peer, comm, CudaDriver.DefaultStream), "ncclRecv");
            }
        });
    });

    public void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum) => Guarded(() =>
    {
        var address = Pointer(tensor, "all-reduce tensor");
        int type = NcclDataTypes.Of(tensor.dtype), op = NcclDataTypes.Of(operation);
        Enqueue("all-reduce", grouped: false, () =>
            Check(NcclNative.ncclAllReduce(address, address, (nuint)tensor.numel(), type, op, comm, CudaDriver.DefaultStream), "ncclAllReduce"));
    });

    public void AllGather(Tensor send, Tensor receive) => Guarded(() =>
    {
        long bytes = TensorPointer.ByteCount(send);
        if (TensorPointer.ByteCount(receive) != bytes * Size) throw new ArgumentException($"all-gather receives {TensorPointer.ByteCount(receive)} bytes, expected {Size} × {bytes}");
        IntPtr from = Pointer(send, "all-gather send"), to = Pointer(receive, "all-gather receive");
        Enqueue("all-gather", grouped: false, () =>
            Check(NcclNative.ncclAllGather(from, to, (nuint)bytes, NcclDataTypes.Uint8, comm, CudaDriver.DefaultStream), "ncclAllGather"));
    });

    public void ReduceScatter(Tensor send, Tensor receive, ReduceOperation operation = ReduceOperation.Sum) => Guarded(() =>
    {
        if (send.numel() != receive.numel() * Size || send.dtype != receive.dtype)
            throw new ArgumentException($"reduce-scatter sends {send.dtype} [{string.Join(", ", send.shape)}], expected {Size} × receive {receive.dtype} [{string.Join(", ", receive.shape)}]");
        IntPtr from = Pointer(send, "reduce-scatter send"), to = Pointer(receive, "reduce-scatter receive");
        int type = NcclDataTypes.Of(receive.dtype), op = NcclDataTypes.Of(operation);
        Enqueue("reduce-scatter", grouped: false, () =>
            Check(NcclNative.ncclReduceScatter(from, to, (nuint)receive.numel(), type, op, comm, CudaDriver.DefaultStream), "ncclReduceScatter"));
    });

    public void Broadcast(Tensor tensor, int root) => Guarded(() =>
    {
        var address = Pointer(tensor, "broadcast tensor");
        Enqueue("broadcast", grouped: false, () =>
            Check(NcclNative.ncclBroadcast(address, address, (nuint)TensorPointer.ByteCount(tensor), NcclDataTypes.Uint8, root, comm, CudaDriver.DefaultStream), "ncclBroadcast"));
    });

    /// <summary>Enqueued like a collective: the GPU waits for the peer's <see cref="Receive"/>, the host does not.</summary>
    public void Send(Tensor tensor, int peer) => Guarded(() =>
    {
        var address = Pointer(tensor, "sent tensor");
        Enqueue("send", grouped: false, () =>
            Check(NcclNative.ncclSend(address, (nuint)TensorPointer.ByteCount(tensor), NcclDataTypes.Uint8, peer, comm, CudaDriver.DefaultStream), "ncclSend"));
    });

    public void Receive(Tensor tensor, int peer) => Guarded(() =>
    {
        var address = Pointer(tensor, "received tensor");
        Enqueue("receive", grouped: false, () =>
            Check(NcclNative.ncclRecv(address, (nuint)TensorPointer.ByteCount(tensor), NcclDataTypes.Uint8, peer, comm, CudaDriver.DefaultStream), "ncclRecv"));
    });

    public ICommunicator Split(int color, int key)
    {
        NcclCommunicator? created = null;
        Guarded(() => Enqueue("split", grouped: false, () =>
        {
            Check(NcclNative.ncclCommSplit(comm, color, key, out IntPtr child, 0), "ncclCommSplit");
            created = new NcclCommunicator(child, Device, scope, Timeout);
        }, track: false));
        return created!;
    }

    /// <summary>An all-reduce of one element, then a wait for it: the host returns only when every rank got here.</summary>
    public void Barrier()
    {
        Guarded(() =>
        {
            barrierFlag ??= torch.zeros(1, ScalarType.Int32, new torch.Device(DeviceType.CUDA, Device));
            AllReduce(barrierFlag);
        });
        Synchronize(Timeout);
    }

    /// <summary>
    /// Waits until the default stream of this rank's GPU is idle (all NCCL and TorchSharp work enqueued so far), at
    /// most <paramref name="timeout"/>; past it the group is aborted. Polls instead of blocking in CUDA so that an
    /// abort from another thread is seen.
    /// </summary>
    public void Synchronize(TimeSpan timeout)
    {
        MakeDeviceCurrent();
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            scope.ThrowIfAborted();
            int state = CudaDriver.cuStreamQuery(CudaDriver.DefaultStream);
            if (state == 0) return;
            if (state != CudaDriver.NotReady) CudaDriver.Check(state, "cuStreamQuery");
            var waited = Stopwatch.GetElapsedTime(start);
            if (waited > timeout)
            {
                var late = new CommunicatorAbortedException($"NCCL rank {Rank} of {Size}: the GPU was still busy after {timeout.TotalSeconds:0.#} s; the group is aborted");
                Abort(late);
                throw late;
            }
            // Short waits (small collectives take tens of µs) are polled hot; long ones sleep.
            if (waited < TimeSpan.FromMilliseconds(2)) Thread.SpinWait(20);
            else Thread.Sleep(1);
        }
    }

    /// <summary>Aborts every communicator of this rank's group (and those split from it) with <paramref name="cause"/>.</summary>
    public void Abort(Exception cause) => scope.Abort(cause);

    public void Dispose()
    {
        if (!scope.IsAborted)
        {
            try
            {
                Synchronize(Timeout);
            }
            catch (CommunicatorAbortedException)
            {
                // Already aborted (and its handle freed) by the failure that ended the wait.
            }
        }
        MakeDeviceCurrent();
        watchdog.Dispose();
        barrierFlag?.Dispose();
        lock (handleGate)
        {
            if (comm != 0) NcclNative.ncclCommDestroy(comm);
            comm = 0;
        }
    }

    internal void MakeDeviceCurrent() => CudaDriver.MakeCurrent(Device);

    /// <summary>NCCL's asynchronous error for this communicator, or null while there is none.</summary>
    internal string? AsyncError()
    {
        lock (handleGate)
        {
            if (comm == 0) return null;
            int result = NcclNative.ncclCommGetAsyncError(comm, out int error);
            if (result != NcclNative.Success) return $"ncclCommGetAsyncError failed: {NcclNative.Describe(result, comm)}";
            return error is NcclNative.Success or NcclNative.InProgress ? null : $"NCCL reported {NcclNative.Describe(error, comm)}";
        }
    }

    /// <summary>
    /// Frees the handle with ncclCommAbort, which also ends this communicator's kernels. It waits briefly for a call
    /// being enqueued, then goes ahead anyway: that call may be the one stuck on a dead peer.
    /// </summary>
    internal void AbortHandle()
    {
        bool entered = Monitor.TryEnter(enqueueGate, TimeSpan.FromSeconds(1));
        try
        {
            lock (handleGate)
            {
                if (comm == 0) return;
                MakeDeviceCurrent();
                NcclNative.ncclCommAbort(comm);
                comm = 0;
            }
        }
        finally
        {
            if (entered) Monitor.Exit(enqueueGate);
        }
    }

    void Enqueue(string what, bool grouped, Action calls, bool track = true)
    {
        lock (enqueueGate)
        {
            scope.ThrowIfAborted();
            MakeDeviceCurrent();
            watchdog.HostCallStarted();
            try
            {
                if (grouped) Check(NcclNative.ncclGroupStart(), "ncclGroupStart");
                calls();
                if (grouped) Check(NcclNative.ncclGroupEnd(), $"ncclGroupEnd ({what})");
            }
            finally
            {
                watchdog.HostCallEnded();
            }
            if (track) watchdog.Track();
        }
    }

    /// <summary>Any failure inside a call aborts the whole group: the peers are waiting for this rank's part.</summary>
    void Guarded(Action body)
    {
        try
        {
            body();
        }
        catch (Exception e) when (e is not CommunicatorAbortedException)
        {
            Abort(new CommunicatorAbortedException($"NCCL rank {Rank} of {Size} failed: {e.Message}", e));
            throw;
        }
    }

    IntPtr Pointer(Tensor tensor, string name)
    {
        if (tensor.device_type != DeviceType.CUDA || tensor.device_index != Device)
            throw new ArgumentException($"{name} is on {tensor.device}; this NCCL rank runs on cuda:{Device}");
        return TensorPointer.Of(tensor, name);
    }

    void Check(int result, string what)
    {
        if (result == NcclNative.Success || result == NcclNative.InProgress) return;
        // A call stuck on a peer (the first collective connects to it) fails once another rank aborts the group:
        // report the abort, not NCCL's "internal error".
        scope.ThrowIfAborted();
        throw new InvalidOperationException($"{what} failed on NCCL rank {Rank}: {NcclNative.Describe(result, comm)}");
    }

    static void RequireSameRows(Tensor send, Tensor receive, string what)
    {
        if (send.dtype != receive.dtype || RowSplits.RowElements(send) != RowSplits.RowElements(receive))
            throw new ArgumentException($"{what} rows differ: send {send.dtype} [{string.Join(", ", send.shape)}], receive {receive.dtype} [{string.Join(", ", receive.shape)}]");
    }
}
