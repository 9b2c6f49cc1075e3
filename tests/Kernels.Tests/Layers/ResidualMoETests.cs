using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Layers;

public class ResidualMoETests
{
    [Fact]
    public void OutputIsTheCoefficientWeightedSumOfMoEAndMlp()
    {
        torch.manual_seed(3);
        var moe = new MoELayer(1, 8, 16, new GateSettings { Experts = 4, MinCapacity = 0, DropTokens = false }, 0.02, 0);
        var mlp = new DenseMlp(8, 16, 0.02);
        var residual = new ResidualMoE(moe, mlp, 8);
        residual.eval();
        using (torch.no_grad())
        {
            // Coefficient logits = [ln 3, 0] for every token → c = softmax = [0.75, 0.25].
            var parameters = residual.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            parameters["coefficient.weight"].zero_();
            parameters["coefficient.bias"].copy_(torch.tensor(new float[] { (float)Math.Log(3), 0 }));
        }
        var x = torch.randn(2, 5, 8);
        var expected = moe.forward(x) * 0.75 + mlp.forward(x) * 0.25;
        Assert.True(residual.forward(x).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }
}
