using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Routing;

/// <summary>
/// The load-balancing loss against its definition (E · Σₑ meanₜ(pₑ) · fₑ, DeepSpeed's; for k &gt; 2 the fraction of all
/// k choices, scaled as topkgating does), and the routing kernels' form — each expert's column sum of the probabilities
/// times its count already scaled (what <c>route_rows</c> adds up, emulated here on the CPU) — against the general one.
/// </summary>
public class LoadBalancingLossTests
{
    [Theory]
    [InlineData(1, 64, 8)]
    [InlineData(2, 96, 6)]
    [InlineData(4, 50, 16)]
    public void TheLossIsTheMeanProbabilityTimesTheRoutedFractionSummedOverExperts(int topK, int tokens, int experts)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(topK * 100 + tokens);
        var probs = torch.randn(tokens, experts).softmax(-1);
        var chosen = probs.topk(topK, dim: 1).indexes;
        var counted = topK <= 2 ? chosen.select(1, 0) : chosen.flatten();
        var routed = torch.zeros(experts, dtype: ScalarType.Int64).index_add_(0, counted, torch.ones_like(counted), 1);

        double expected = 0;
        for (int e = 0; e < experts; e++)
            expected += probs.select(1, e).mean().item<float>() * routed[e].item<long>() / (double)counted.shape[0];
        expected *= experts;

        double general = LoadBalancingLoss.Compute(probs, routed.unsqueeze(0), 1, topK).item<float>();
        // route_rows weighs each expert's column sum of the probabilities by (float)count · (float)scale, as torch's
        // long × double product gives it.
        using var scaled = routed.to_type(ScalarType.Float32).mul((float)LoadBalancingLoss.Scale(experts, 1, tokens, topK));
        double fromScaledCounts = (probs.sum(dim: 0) * scaled).sum().item<float>();

        Assert.Equal(expected, general, 1e-5);
        Assert.Equal(general, fromScaledCounts, 1e-6);
    }
}
