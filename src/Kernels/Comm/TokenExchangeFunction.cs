using System.Runtime.ExceptionServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// The all-to-all as an autograd function. An equal-split all-to-all sends chunk (r → s) to position r on rank s;
/// the gradient of that chunk comes back the same way with the roles swapped, which is the same exchange
/// applied to the output gradient.
/// </summary>
public sealed class TokenExchangeFunction : autograd.SingleTensorFunction<TokenExchangeFunction>
{
    const string ExchangeKey = "exchange";

    public override string Name => "TokenExchange";

    const string SendKey = "send", ReceiveKey = "receive";

    public static Tensor Apply(Tensor rows, ITokenExchange exchange) => apply(rows, exchange);

    /// <summary>Chunks of different sizes; the backward sends the gradients back with the counts swapped.</summary>
    public static Tensor Apply(Tensor rows, ITokenExchange exchange, long[] sendRows, long[] receiveRows) => apply(rows, exchange, sendRows, receiveRows);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var exchange = (ITokenExchange)vars[1];
        ctx.save_data(ExchangeKey, exchange);
        // Empty counts mark the equal-split exchange.
        var (send, receive) = vars.Length == 2 ? ([], []) : ((long[])vars[2], (long[])vars[3]);
        ctx.save_data(SendKey, send);
        ctx.save_data(ReceiveKey, receive);
        return send.Length == 0 ? exchange.Exchange((Tensor)vars[0]) : exchange.Exchange((Tensor)vars[0], send, receive);
    }

    // libtorch calls backward from native code: an exception must not unwind through its frames. A CPU backward
    // runs on the thread that called Tensor.backward(), so the failure waits here for that thread to rethrow it.
    [ThreadStatic] static ExceptionDispatchInfo? backwardFailure;

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradient) =>
        BackwardLifetimes.Run([gradient], () => Backward(ctx, gradient));

    static List<Tensor?> Backward(autograd.AutogradContext ctx, Tensor gradient)
    {
        var exchange = (ITokenExchange)ctx.get_data(ExchangeKey);
        var send = (long[])ctx.get_data(SendKey);
        try
        {
            if (send.Length == 0) return [exchange.Exchange(gradient), null];
            return [exchange.Exchange(gradient, (long[])ctx.get_data(ReceiveKey), send), null, null, null];
        }
        catch (CommunicatorAbortedException e)
        {
            // The group is dead (a rank failed or was lost): the step is void, so any gradient will do until the
            // caller rethrows after backward.
            backwardFailure ??= ExceptionDispatchInfo.Capture(e);
            long[] shape = [send.Length == 0 ? gradient.shape[0] : send.Sum(), .. gradient.shape[1..]];
            var zeros = torch.zeros(shape, gradient.dtype, gradient.device);
            return send.Length == 0 ? [zeros, null] : [zeros, null, null, null];
        }
    }

    /// <summary>Rethrows (once) the communicator failure a backward of this thread swallowed; call after Tensor.backward().</summary>
    public static void ThrowIfBackwardFailed()
    {
        var failure = backwardFailure;
        backwardFailure = null;
        failure?.Throw();
    }
}
