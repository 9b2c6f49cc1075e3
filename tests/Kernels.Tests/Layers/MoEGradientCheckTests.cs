using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Layers;

/// <summary>Autograd gradients of the whole MoE layer (router, dispatch, experts, combine) against central differences in float64.</summary>
public class MoEGradientCheckTests
{
    [Theory]
    [InlineData(1, true, true)]
    [InlineData(2, true, true)]
    [InlineData(2, false, true)]   // dropless: packed buffer, one GEMM pair per expert
    [InlineData(1, true, false)]   // the general sort-based routing path
    [InlineData(2, false, false)]
    public void GradientsMatchFiniteDifferences(int topK, bool dropTokens, bool scanPath)
    {
        torch.manual_seed(11);
        var layer = new MoELayer(0, 6, 5, new GateSettings { Experts = 4, TopK = topK, EvalCapacityFactor = 0.75, MinCapacity = 0, DropTokens = dropTokens, UseRts = false }, 0.3, 0);
        layer.to(ScalarType.Float64);
        layer.Router.AllowScanPath = scanPath;
        layer.eval(); // no noise: the function is deterministic
        var x = torch.randn(12, 6, dtype: ScalarType.Float64, requires_grad: true);
        var probe = torch.randn(12, 6, dtype: ScalarType.Float64);

        Tensor Loss() => (layer.forward(x) * probe).sum() + 0.5 * RouterAux(layer, x);

        var loss = Loss();
        loss.backward();
        var checks = new (string Name, Tensor Value, Tensor Grad)[]
        {
            ("x", x, x.grad!),
            ("router", layer.Router.Weight, layer.Router.Weight.grad!),
            ("w1", layer.Experts.W1, layer.Experts.W1.grad!),
            ("w2", layer.Experts.W2, layer.Experts.W2.grad!),
        };
        var rng = new Random(5);
        const double h = 1e-6;
        foreach (var (name, value, grad) in checks)
        {
            var flat = value.detach().view(-1);
            var g = grad.view(-1);
            for (int trial = 0; trial < 12; trial++)
            {
                long i = rng.NextInt64(flat.shape[0]);
                double original = flat[i].item<double>();
                double plus, minus;
                using (torch.no_grad())
                {
                    flat[i] = original + h;
                    plus = Loss().item<double>();
                    flat[i] = original - h;
                    minus = Loss().item<double>();
                    flat[i] = original;
                }
                double numeric = (plus - minus) / (2 * h), analytic = g[i].item<double>();
                Assert.True(Math.Abs(numeric - analytic) <= 1e-6 + 1e-5 * Math.Abs(numeric),
                    $"{name}[{i}]: autograd {analytic}, finite difference {numeric}");
            }
        }
    }

    static Tensor RouterAux(MoELayer layer, Tensor x)
    {
        return layer.Router.Route(x, 1, RoutingContext.Inference).AuxLoss;
    }
}
