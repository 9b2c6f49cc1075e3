using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// A group of ranks that exchange tensors: the collectives the MoE data plane needs, one interface over NCCL,
/// MPI and shared memory. Every call is collective: all ranks of the group make the same calls in the same order
/// with tensors of matching shapes. Tensors are contiguous; "rows" are slices along dimension 0. Calls return
/// when this rank's part is done and the result may be read (on CUDA: enqueued on the device's default stream).
/// A failed rank aborts the group so that the others fail with <see cref="CommunicatorAbortedException"/>
/// instead of waiting forever.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This rank's index in the group, 0 … Size−1.</summary>
    int Rank { get; }

    int Size { get; }

    /// <summary>"shared-memory", "mpi" or "nccl".</summary>
    string Backend { get; }

    /// <summary>
    /// Sends rows <c>sendRows[0..i)</c>-offset chunk i of <paramref name="send"/> to rank i and receives rank i's
    /// chunk for this rank into <paramref name="receive"/> at the matching offset. Null counts mean equal splits
    /// (the row count divided by Size).
    /// </summary>
    void AllToAll(Tensor send, Tensor receive, long[]? sendRows = null, long[]? receiveRows = null);

    /// <summary>Reduces <paramref name="tensor"/> over the group, in place, with the same result bits on every rank.</summary>
    void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum);

    /// <summary><paramref name="receive"/> (Size × the rows of <paramref name="send"/>) gets every rank's rows in rank order.</summary>
    void AllGather(Tensor send, Tensor receive);

    /// <summary>Reduces <paramref name="send"/> (Size × the rows of <paramref name="receive"/>) and keeps chunk Rank.</summary>
    void ReduceScatter(Tensor send, Tensor receive, ReduceOperation operation = ReduceOperation.Sum);

    /// <summary>Copies <paramref name="tensor"/> from <paramref name="root"/> into every rank's tensor.</summary>
    void Broadcast(Tensor tensor, int root);

    /// <summary>Point-to-point: blocks until <paramref name="peer"/> has a matching <see cref="Receive"/>'s data (or it is buffered).</summary>
    void Send(Tensor tensor, int peer);

    void Receive(Tensor tensor, int peer);

    /// <summary>
    /// Splits the group (collective): ranks passing the same <paramref name="color"/> form a new group, ordered by
    /// <paramref name="key"/> then by rank here.
    /// </summary>
    ICommunicator Split(int color, int key);

    /// <summary>Waits until every rank has reached this call.</summary>
    void Barrier();
}
