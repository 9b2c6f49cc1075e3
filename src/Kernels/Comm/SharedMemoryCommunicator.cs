using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// One rank of a <see cref="SharedMemoryGroup"/>. Reductions add the ranks' tensors in rank order, so every rank
/// gets the same bits; an exception inside a collective aborts the whole group.
/// </summary>
sealed class SharedMemoryCommunicator(SharedMemoryGroup group, int rank) : ICommunicator
{
    int splits;

    public int Rank => rank;
    public int Size => group.Size;
    public string Backend => "shared-memory";

    public void AllToAll(Tensor send, Tensor receive, long[]? sendRows = null, long[]? receiveRows = null) => Guarded(() =>
    {
        var sent = RowSplits.Resolve(send, sendRows, Size, "all-to-all send");
        var expected = RowSplits.Resolve(receive, receiveRows, Size, "all-to-all receive");
        return Collective(new Posted(send, sent), () =>
        {
            long at = 0;
            for (int source = 0; source < Size; source++)
            {
                var other = group.Read<Posted>(source);
                long offset = RowSplits.Offsets(other.Rows)[rank], rows = other.Rows[rank];
                if (rows != expected[source])
                    throw new ArgumentException($"rank {rank} expects {expected[source]} rows from rank {source}, which sends {rows}");
                if (rows > 0) receive.narrow(0, at, rows).copy_(other.Data.narrow(0, offset, rows));
                at += rows;
            }
            return null;
        });
    });

    public void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum)
    {
        using var result = Collective(new Posted(tensor, []), () => Reduce(i => group.Read<Posted>(i).Data, tensor, operation))!;
        tensor.copy_(result);
    }

    public void AllGather(Tensor send, Tensor receive) => Guarded(() =>
    {
        long rows = send.dim() == 0 ? 1 : send.shape[0];
        if (receive.shape[0] != rows * Size) throw new ArgumentException($"all-gather receives {receive.shape[0]} rows, expected {Size} × {rows}");
        return Collective(new Posted(send, []), () =>
        {
            for (int source = 0; source < Size; source++)
                receive.narrow(0, source * rows, rows).copy_(group.Read<Posted>(source).Data.reshape(receive.narrow(0, 0, rows).shape));
            return null;
        });
    });

    public void ReduceScatter(Tensor send, Tensor receive, ReduceOperation operation = ReduceOperation.Sum) => Guarded(() =>
    {
        long rows = receive.shape[0];
        if (send.shape[0] != rows * Size) throw new ArgumentException($"reduce-scatter sends {send.shape[0]} rows, expected {Size} × {rows}");
        using var result = Collective(new Posted(send, []), () => Reduce(i => group.Read<Posted>(i).Data.narrow(0, rank * rows, rows), receive, operation))!;
        receive.copy_(result);
        return null;
    });

    public void Broadcast(Tensor tensor, int root)
    {
        Collective(new Posted(tensor, []), () =>
        {
            if (rank != root) tensor.copy_(group.Read<Posted>(root).Data);
            return null;
        });
    }

    public void Send(Tensor tensor, int peer)
    {
        group.ThrowIfAborted();
        // The copy outlives the sender's dispose scope: the receiver disposes it once read.
        group.Mailbox(rank, peer).Add(tensor.detach().clone().DetachFromDisposeScope());
    }

    public void Receive(Tensor tensor, int peer)
    {
        Tensor received;
        try
        {
            if (!group.Mailbox(peer, rank).TryTake(out received!, (int)group.Timeout.TotalMilliseconds, group.AbortToken))
                throw new CommunicatorAbortedException($"rank {rank} waited {group.Timeout.TotalSeconds:0} s for a message from rank {peer}");
        }
        catch (OperationCanceledException)
        {
            group.ThrowIfAborted();
            throw;
        }
        using (received) tensor.copy_(received);
    }

    public ICommunicator Split(int color, int key)
    {
        int split = splits++;
        ICommunicator? joined = null;
        Collective(new Posted(null, [color, key]), () =>
        {
            var members = Enumerable.Range(0, Size)
                .Select(r => (Rank: r, Args: group.Read<Posted>(r).Rows))
                .Where(m => m.Args[0] == color)
                .OrderBy(m => m.Args[1]).ThenBy(m => m.Rank)
                .Select(m => m.Rank).ToList();
            joined = group.Child(split, color, members.Count).Join(members.IndexOf(rank));
            return null;
        });
        return joined!;
    }

    public void Barrier() => Collective(new Posted(null, []), () => null);

    /// <summary>Post, wait for all, do this rank's part, wait until every rank has done its part.</summary>
    Tensor? Collective(Posted posted, Func<Tensor?> work) => Guarded(() =>
    {
        group.Post(rank, posted);
        group.Wait();
        Tensor? result;
        using (torch.no_grad()) result = work();
        group.Wait();
        return result;
    });

    /// <summary>
    /// A failure on this rank (a bad argument included) aborts the group: the others are, or will be, waiting for
    /// this rank's part.
    /// </summary>
    Tensor? Guarded(Func<Tensor?> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is not CommunicatorAbortedException)
        {
            group.Abort(new CommunicatorAbortedException($"shared-memory rank {rank} failed: {e.Message}", e));
            throw;
        }
    }

    Tensor Reduce(Func<int, Tensor> source, Tensor like, ReduceOperation operation)
    {
        var total = source(0).to(like.device, copy: true);
        for (int i = 1; i < Size; i++)
        {
            var next = source(i).to(like.device);
            if (operation == ReduceOperation.Sum) total.add_(next);
            else total = total.maximum(next);
        }
        return total;
    }

    public void Dispose()
    {
    }

    sealed record Posted(Tensor? Tensor, long[] Rows)
    {
        public Tensor Data => Tensor ?? throw new InvalidOperationException("ranks are making different collective calls");
    }
}
