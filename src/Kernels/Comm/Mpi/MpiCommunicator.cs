using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm.Mpi;

/// <summary>
/// One rank of an MPI communicator over CPU tensors (MPICH; not CUDA-aware here). MPI reads and writes the tensors'
/// memory in place. Any failure inside a call (a bad argument, an MPI error) aborts the whole job through
/// MPI_Abort: the others are in, or will enter, a collective that this rank will never join.
/// </summary>
public sealed class MpiCommunicator : ICommunicator
{
    /// <summary>Floating-point reductions larger than this go in several calls (MPI counts are ints).</summary>
    const int MaxElementsPerCall = int.MaxValue;

    int comm;
    readonly bool owned;

    internal MpiCommunicator(int comm, bool owned)
    {
        this.comm = comm;
        this.owned = owned;
        MpiNative.Check(MpiNative.MPI_Comm_rank(comm, out int rank), "Comm_rank");
        MpiNative.Check(MpiNative.MPI_Comm_size(comm, out int size), "Comm_size");
        Rank = rank;
        Size = size;
    }

    public int Rank { get; }
    public int Size { get; }
    public string Backend => "mpi";

    public void AllToAll(Tensor send, Tensor receive, long[]? sendRows = null, long[]? receiveRows = null) => Guarded(() =>
    {
        var sent = RowSplits.Resolve(send, sendRows, Size, "all-to-all send");
        var received = RowSplits.Resolve(receive, receiveRows, Size, "all-to-all receive");
        RequireSameRows(send, receive, "all-to-all");
        int row = MpiDataTypes.Row(send);
        try
        {
            MpiNative.Check(MpiNative.MPI_Alltoallv(
                Pointer(send, "all-to-all send"), Counts(sent), Counts(RowSplits.Offsets(sent)), row,
                Pointer(receive, "all-to-all receive"), Counts(received), Counts(RowSplits.Offsets(received)), row, comm), "Alltoallv");
        }
        finally
        {
            MpiDataTypes.Free(row);
        }
    });

    public void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum) => Guarded(() =>
        Reduced(tensor, operation, (buffer, type, op) =>
        {
            long total = buffer.numel();
            var address = Pointer(buffer, "all-reduce tensor");
            for (long done = 0; done < total; done += MaxElementsPerCall)
            {
                int count = (int)Math.Min(MaxElementsPerCall, total - done);
                var at = address + (nint)(done * buffer.ElementSize);
                bool floatingSum = op == MpiNative.Sum && (type == MpiNative.Float || type == MpiNative.Double);
                if (floatingSum) SumIdenticallyEverywhere(at, count, type);
                else MpiNative.Check(MpiNative.MPI_Allreduce(MpiNative.InPlace, at, count, type, op, comm), "Allreduce");
            }
        }));

    public void AllGather(Tensor send, Tensor receive) => Guarded(() =>
    {
        long rows = send.dim() == 0 ? 1 : send.shape[0];
        if (receive.shape[0] != rows * Size) throw new ArgumentException($"all-gather receives {receive.shape[0]} rows, expected {Size} × {rows}");
        RequireSameRows(send, receive, "all-gather");
        int row = MpiDataTypes.Row(receive);
        try
        {
            int count = MpiDataTypes.Count(rows, "rows");
            MpiNative.Check(MpiNative.MPI_Allgather(Pointer(send, "all-gather send"), count, row, Pointer(receive, "all-gather receive"), count, row, comm), "Allgather");
        }
        finally
        {
            MpiDataTypes.Free(row);
        }
    });

    public void ReduceScatter(Tensor send, Tensor receive, ReduceOperation operation = ReduceOperation.Sum) => Guarded(() =>
    {
        if (send.shape[0] != receive.shape[0] * Size) throw new ArgumentException($"reduce-scatter sends {send.shape[0]} rows, expected {Size} × {receive.shape[0]}");
        if (send.dtype != receive.dtype) throw new ArgumentException($"reduce-scatter sends {send.dtype} but receives {receive.dtype}");
        bool widened = MpiDataTypes.Reducible(send.dtype) is null;
        var input = widened ? send.to_type(ScalarType.Float32) : send;
        try
        {
            Reduced(receive, operation, (output, type, op) =>
            {
                int count = MpiDataTypes.Count(output.numel(), "elements per rank");
                MpiNative.Check(MpiNative.MPI_Reduce_scatter_block(Pointer(input, "reduce-scatter send"), Pointer(output, "reduce-scatter receive"), count, type, op, comm), "Reduce_scatter_block");
            });
        }
        finally
        {
            if (widened) input.Dispose();
        }
    });

    public void Broadcast(Tensor tensor, int root) => Guarded(() => MoveRows(tensor, "broadcast", (address, count, row) =>
        MpiNative.Check(MpiNative.MPI_Bcast(address, count, row, root, comm), "Bcast")));

    public void Send(Tensor tensor, int peer) => Guarded(() => MoveRows(tensor, "send", (address, count, row) =>
        MpiNative.Check(MpiNative.MPI_Send(address, count, row, peer, 0, comm), "Send")));

    public void Receive(Tensor tensor, int peer) => Guarded(() => MoveRows(tensor, "receive", (address, count, row) =>
        MpiNative.Check(MpiNative.MPI_Recv(address, count, row, peer, 0, comm, MpiNative.StatusIgnore), "Recv")));

    public ICommunicator Split(int color, int key)
    {
        ICommunicator? created = null;
        Guarded(() =>
        {
            MpiNative.Check(MpiNative.MPI_Comm_split(comm, color, key, out int child), "Comm_split");
            created = new MpiCommunicator(child, owned: true);
        });
        return created!;
    }

    public void Barrier() => Guarded(() => MpiNative.Check(MpiNative.MPI_Barrier(comm), "Barrier"));

    public void Dispose()
    {
        if (owned && comm != 0) MpiNative.MPI_Comm_free(ref comm);
        comm = 0;
    }

    /// <summary>
    /// MPI does not promise that MPI_Allreduce gives every rank the same bits for floating-point sums (the order of
    /// additions may differ by rank). Reducing once at rank 0 and broadcasting the result does.
    /// </summary>
    void SumIdenticallyEverywhere(IntPtr address, int count, int type)
    {
        var send = Rank == 0 ? MpiNative.InPlace : address;
        MpiNative.Check(MpiNative.MPI_Reduce(send, address, count, type, MpiNative.Sum, 0, comm), "Reduce");
        MpiNative.Check(MpiNative.MPI_Bcast(address, count, type, 0, comm), "Bcast");
    }

    /// <summary>Runs a reduction on <paramref name="target"/>, through a float32 copy for half-precision types.</summary>
    static void Reduced(Tensor target, ReduceOperation operation, Action<Tensor, int, int> reduce)
    {
        int op = operation == ReduceOperation.Sum ? MpiNative.Sum : MpiNative.Max;
        var type = MpiDataTypes.Reducible(target.dtype);
        if (type is int native)
        {
            reduce(target, native, op);
            return;
        }
        using var wide = target.to_type(ScalarType.Float32);
        reduce(wide, MpiNative.Float, op);
        using (torch.no_grad()) target.copy_(wide);
    }

    static void MoveRows(Tensor tensor, string what, Action<IntPtr, int, int> move)
    {
        int row = MpiDataTypes.Row(tensor);
        try
        {
            move(Pointer(tensor, what), MpiDataTypes.Count(tensor.dim() == 0 ? 1 : tensor.shape[0], "rows"), row);
        }
        finally
        {
            MpiDataTypes.Free(row);
        }
    }

    static IntPtr Pointer(Tensor tensor, string name)
    {
        if (tensor.device_type != DeviceType.CPU) throw new ArgumentException($"{name} is on {tensor.device}; the MPI backend moves CPU tensors (use NCCL for CUDA)");
        return TensorPointer.Of(tensor, name);
    }

    static int[] Counts(long[] rows) => rows.Select(r => MpiDataTypes.Count(r, "rows")).ToArray();

    static void RequireSameRows(Tensor send, Tensor receive, string what)
    {
        if (send.dtype != receive.dtype || RowSplits.RowElements(send) != RowSplits.RowElements(receive))
            throw new ArgumentException($"{what} rows differ: send {send.dtype} [{string.Join(", ", send.shape)}], receive {receive.dtype} [{string.Join(", ", receive.shape)}]");
    }

    void Guarded(Action body)
    {
        try
        {
            body();
        }
        catch (Exception e)
        {
            MpiRuntime.Abort(new CommunicatorAbortedException($"MPI rank {Rank} of {Size} failed: {e.Message}", e));
            throw;
        }
    }
}
