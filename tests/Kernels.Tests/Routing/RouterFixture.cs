using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Routing;

/// <summary>Routers whose logits are exactly the token vectors (W = I), so tests choose the logits by hand.</summary>
internal static class RouterFixture
{
    public static TopKRouter IdentityRouter(GateSettings settings)
    {
        var router = new TopKRouter(settings.Experts, settings, layerIndex: 0);
        using var noGrad = torch.no_grad();
        router.Weight.copy_(torch.eye(settings.Experts));
        router.eval();
        return router;
    }

    /// <summary>Tokens whose logits are 5 for the chosen expert and 0 elsewhere.</summary>
    public static Tensor OneHotTokens(int experts, params long[] choices) =>
        torch.nn.functional.one_hot(torch.tensor(choices), experts).to_type(ScalarType.Float32) * 5;

    public static long[] Longs(Tensor t) => t.to_type(ScalarType.Int64).data<long>().ToArray();

    public static float[] Floats(Tensor t) => t.to_type(ScalarType.Float32).data<float>().ToArray();
}
