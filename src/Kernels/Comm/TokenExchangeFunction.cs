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

    public static Tensor Apply(Tensor rows, ITokenExchange exchange) => apply(rows, exchange);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var exchange = (ITokenExchange)vars[1];
        ctx.save_data(ExchangeKey, exchange);
        return exchange.Exchange((Tensor)vars[0]);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradient)
    {
        var exchange = (ITokenExchange)ctx.get_data(ExchangeKey);
        return [exchange.Exchange(gradient), null!];
    }
}
