using Orleans.MoE.Kernels.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// Checks a variant against the same function in float64 on fresh random inputs: given the experts it chose
/// and which choices it kept, recompute gates, experts and combine in float64 and compare the output and the
/// gradients of x and of the first expert matrix by relative error ‖a − b‖ / ‖b‖.
/// </summary>
public static class Float64Check
{
    public sealed record Errors(double Output, double GradX, double GradW1, double GradRouter)
    {
        public double Max => Math.Max(Math.Max(Output, GradX), Math.Max(GradW1, GradRouter));
    }

    public static Errors Run(IBenchLayer variant, MoELayer weights, BenchShape shape, Device device, ScalarType dtype, long seed)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(seed);
        var x = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype).requires_grad_();
        var probe = torch.randn(shape.Tokens, shape.DModel, device: device);
        ZeroGrads(weights);
        var result = variant.Forward(x);
        (result.Output.to_type(ScalarType.Float32) * probe).sum().backward();

        var x64 = x.detach().to_type(ScalarType.Float64).requires_grad_();
        var router64 = weights.Router.Weight.detach().to_type(ScalarType.Float64).requires_grad_();
        var w1 = weights.Experts.W1.detach().to_type(ScalarType.Float64).requires_grad_();
        var w2 = weights.Experts.W2.detach().to_type(ScalarType.Float64);
        var y64 = Reference(x64, router64, w1, w2, result.Experts, result.Weights.gt(0));
        (y64 * probe.to_type(ScalarType.Float64)).sum().backward();

        return new Errors(
            Relative(result.Output, y64),
            Relative(x.grad!, x64.grad!),
            Relative(weights.Experts.W1.grad!, w1.grad!),
            Relative(weights.Router.Weight.grad!, router64.grad!));
    }

    static Tensor Reference(Tensor x, Tensor router, Tensor w1, Tensor w2, Tensor chosen, Tensor keep)
    {
        int k = (int)chosen.shape[1], e = (int)w1.shape[0];
        var gates = nn.functional.linear(x, router).softmax(-1).gather(1, chosen) * keep;
        var weights = k == 1 ? gates : gates / gates.sum(1, keepdim: true).clamp_min(1e-12);
        var y = torch.zeros_like(x);
        for (int expert = 0; expert < e; expert++)
        {
            var hits = chosen.eq(expert).logical_and(keep).nonzero();
            if (hits.shape[0] == 0) continue;
            var tokens = hits.select(1, 0);
            var h = nn.functional.gelu(x.index_select(0, tokens).matmul(w1[expert])).matmul(w2[expert]);
            var w = weights.view(-1).index_select(0, tokens * k + hits.select(1, 1)).unsqueeze(1);
            y = y.index_add(0, tokens, h * w, 1.0);
        }
        return y;
    }

    public static void ZeroGrads(MoELayer layer)
    {
        foreach (var p in layer.parameters()) p.grad?.zero_();
    }

    static double Relative(Tensor a, Tensor b)
    {
        var a64 = a.detach().to_type(ScalarType.Float64);
        var b64 = b.detach().to_type(ScalarType.Float64);
        double denominator = b64.norm().item<double>();
        return (a64 - b64).norm().item<double>() / Math.Max(denominator, 1e-30);
    }
}
