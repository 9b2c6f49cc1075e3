using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>One all-to-all over the whole expert-parallel group: every rank sends to every other directly.</summary>
public sealed class FlatTokenExchange(ICommunicator group) : ITokenExchange
{
    public int Size => group.Size;

    public string Describe() => $"flat over {group.Size}";

    public Tensor Exchange(Tensor rows)
    {
        var send = rows.contiguous();
        var receive = torch.empty_like(send);
        group.AllToAll(send, receive);
        return receive;
    }

    public Tensor Exchange(Tensor rows, long[] sendRows, long[] receiveRows)
    {
        var send = rows.contiguous();
        var shape = send.shape.ToArray();
        shape[0] = receiveRows.Sum();
        var receive = torch.empty(shape, send.dtype, send.device);
        group.AllToAll(send, receive, sendRows, receiveRows);
        return receive;
    }
}
