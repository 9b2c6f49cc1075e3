using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Measures the time a rank spends in communication: the device is synchronised before each collective (so
/// earlier compute is not counted) and after it (so the transfer is), and the wall time in between goes to the
/// clock. The synchronisations cost overlap, so this is a measuring mode (parallel.profile_communication), not the
/// way to train fast.
/// </summary>
public sealed class TimedCommunicator(ICommunicator inner, CommunicationClock clock) : ICommunicator
{
    public int Rank => inner.Rank;
    public int Size => inner.Size;
    public string Backend => inner.Backend;

    public void AllToAll(Tensor send, Tensor receive, long[]? sendRows = null, long[]? receiveRows = null) => Timed(send, () => inner.AllToAll(send, receive, sendRows, receiveRows));
    public void AllReduce(Tensor tensor, ReduceOperation operation = ReduceOperation.Sum) => Timed(tensor, () => inner.AllReduce(tensor, operation));
    public void AllGather(Tensor send, Tensor receive) => Timed(send, () => inner.AllGather(send, receive));
    public void ReduceScatter(Tensor send, Tensor receive, ReduceOperation operation = ReduceOperation.Sum) => Timed(send, () => inner.ReduceScatter(send, receive, operation));
    public void Broadcast(Tensor tensor, int root) => Timed(tensor, () => inner.Broadcast(tensor, root));
    public void Send(Tensor tensor, int peer) => Timed(tensor, () => inner.Send(tensor, peer));
    public void Receive(Tensor tensor, int peer) => Timed(tensor, () => inner.Receive(tensor, peer));
    public ICommunicator Split(int color, int key) => new TimedCommunicator(inner.Split(color, key), clock);
    public void Barrier() => inner.Barrier();

    void Timed(Tensor tensor, Action call)
    {
        var device = tensor.device;
        Synchronize(device);
        long start = Stopwatch.GetTimestamp();
        call();
        Synchronize(device);
        clock.Add(Stopwatch.GetElapsedTime(start));
    }

    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }

    public void Dispose() => inner.Dispose();
}
