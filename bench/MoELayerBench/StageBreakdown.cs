using System.Globalization;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>Where one forward's time goes: each stage of the layer timed alone, next to a bare batched GEMM of the same size.</summary>
public static class StageBreakdown
{
    public static void Run(MoELayer layer, BenchShape shape, Device device, ScalarType dtype, int warmup, int iterations)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype);
        Tensor buffer, hidden, activated, output;
        RoutingTable table;
        using (torch.no_grad())
        {
            table = layer.Router.Route(x, 1, RoutingContext.Inference);
            buffer = IndexDispatcher.Dispatch(x, table);
            hidden = torch.bmm(buffer, layer.Experts.W1);
            activated = nn.functional.gelu(hidden);
            output = torch.bmm(activated, layer.Experts.W2);
        }
        var xGrad = x.detach().requires_grad_();
        var bufferGrad = buffer.detach().requires_grad_();
        var outputGrad = output.detach().requires_grad_();
        var square = torch.randn(buffer.shape[0], buffer.shape[1], buffer.shape[2], device: device).to_type(dtype);
        var stages = new (string Name, Action Body)[]
        {
            ("route", () => layer.Router.Route(x, 1, RoutingContext.Inference)),
            ("dispatch", () => IndexDispatcher.Dispatch(x, table)),
            ("bmm1", () => torch.bmm(buffer, layer.Experts.W1)),
            ("gelu", () => nn.functional.gelu(hidden)),
            ("bmm2", () => torch.bmm(activated, layer.Experts.W2)),
            ("combine", () => IndexDispatcher.Combine(output, table, shape.Tokens)),
            ("bmm1 on fresh randn input", () => torch.bmm(square, layer.Experts.W1)),
            ("whole layer", () => layer.forward(x)),
        };
        var trainStages = new (string Name, Func<Tensor> Forward)[]
        {
            ("route+aux fwd+bwd", () => { var t = layer.Router.Route(xGrad, 1, RoutingContext.Inference); return (t.Weights.sum() + t.AuxLoss).sum(); }),
            ("route weights only fwd+bwd", () => layer.Router.Route(xGrad, 1, RoutingContext.Inference).Weights.sum()),
            ("route aux only fwd+bwd", () => layer.Router.Route(xGrad, 1, RoutingContext.Inference).AuxLoss),
            ("router logits (fp32 linear) fwd+bwd", () => nn.functional.linear(xGrad.to_type(ScalarType.Float32), layer.Router.Weight.to_type(ScalarType.Float32)).sum()),
            ("router softmax+topk fwd+bwd", () => nn.functional.linear(xGrad.to_type(ScalarType.Float32), layer.Router.Weight.to_type(ScalarType.Float32)).softmax(-1).topk(1, dim: 1).values.sum()),
            ("dispatch fwd+bwd", () => IndexDispatcher.Dispatch(xGrad, table).sum()),
            ("experts fwd+bwd", () => layer.Experts.forward(bufferGrad).sum()),
            ("combine fwd+bwd", () => IndexDispatcher.Combine(outputGrad, table, shape.Tokens).sum()),
        };
        double gemmFlops = 2.0 * buffer.shape[0] * buffer.shape[1] * buffer.shape[2] * layer.Experts.W1.shape[2];
        foreach (var (name, body) in stages)
        {
            double ms;
            using (torch.no_grad())
                ms = Timing.MedianMs(device, warmup, iterations, () => { using var s = torch.NewDisposeScope(); body(); });
            string rate = name.StartsWith("bmm", StringComparison.Ordinal) ? string.Create(CultureInfo.InvariantCulture, $"  ({gemmFlops / (ms / 1000) / 1e12:F0} TFLOP/s)") : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"breakdown {shape.Name} {name}: {ms:F3} ms{rate}"));
        }

        foreach (var (name, forward) in trainStages)
        {
            double ms = Timing.MedianMs(device, warmup, iterations, () => { using var s = torch.NewDisposeScope(); forward().backward(); }, () =>
            {
                layer.zero_grad(set_to_none: true);
                xGrad.grad = null!;
                bufferGrad.grad = null!;
                outputGrad.grad = null!;
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"breakdown {shape.Name} {name}: {ms:F3} ms"));
        }
    }
}
