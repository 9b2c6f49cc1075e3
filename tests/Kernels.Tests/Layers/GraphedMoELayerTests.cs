using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Layers;

/// <summary>
/// The graphed layer's plumbing (static tensors, the autograd function, gradients written into the weights) must give
/// what the layer itself gives. On CPU it re-runs the layer eagerly where a GPU replays graphs; the bench checks the
/// graphs against float64 on the GPU.
/// </summary>
public class GraphedMoELayerTests
{
    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    public void GraphedLayerGivesTheLayersOutputsAndGradients(bool dropTokens, int topK)
    {
        torch.manual_seed(40 + topK);
        var settings = new GateSettings { Experts = 4, TopK = topK, CapacityFactor = 1.0, MinCapacity = 0, DropTokens = dropTokens, UseRts = false, SecondExpertSampling = false };
        using var layer = new MoELayer(0, 8, 12, settings, 0.1, groupTokens: 0);
        using var graphed = new GraphedMoELayer(layer, [2, 10, 8], ScalarType.Float32, torch.CPU);
        var probe = torch.randn(2, 10, 8);
        var parameters = layer.parameters().ToArray();

        // Two steps with gradients dropped in between, then one that accumulates onto the second's.
        for (int step = 0; step < 3; step++)
        {
            var x = torch.randn(2, 10, 8).requires_grad_();
            if (step < 2) layer.zero_grad(set_to_none: true);
            var before = parameters.Select(p => p.grad?.clone()).ToArray();

            var statistics = new MoEStatistics();
            layer.Statistics = statistics;
            var expected = layer.forward(x);
            layer.Statistics = null;
            var expectedAux = statistics.Reports[0].Table.AuxLoss;
            var expectedGrads = torch.autograd.grad([(expected * probe).sum() + 0.5 * expectedAux], parameters.Prepend(x).ToArray());

            var (output, aux) = graphed.Forward(x);
            Assert.True(output.allclose(expected, rtol: 1e-5, atol: 1e-6), $"step {step}: outputs differ");
            Assert.Equal(expectedAux.item<float>(), aux.item<float>(), 5);
            ((output * probe).sum() + 0.5 * aux).backward();

            Assert.True(x.grad!.allclose(expectedGrads[0], rtol: 1e-5, atol: 1e-6), $"step {step}: input gradient differs");
            for (int i = 0; i < parameters.Length; i++)
            {
                var want = before[i] is null ? expectedGrads[i + 1] : before[i]! + expectedGrads[i + 1];
                Assert.True(parameters[i].grad!.allclose(want, rtol: 1e-5, atol: 1e-6), $"step {step}: gradient of {i} differs");
            }
        }
    }

    [Fact]
    public void AForwardBeforeThePreviousBackwardIsRefused()
    {
        torch.manual_seed(3);
        var settings = new GateSettings { Experts = 4, TopK = 1, DropTokens = true, UseRts = false };
        using var layer = new MoELayer(0, 8, 12, settings, 0.1, groupTokens: 0);
        using var graphed = new GraphedMoELayer(layer, [6, 8], ScalarType.Float32, torch.CPU);
        graphed.Forward(torch.randn(6, 8));
        Assert.Throws<InvalidOperationException>(() => graphed.Forward(torch.randn(6, 8)));
        Assert.Throws<ArgumentException>(() => graphed.Forward(torch.randn(5, 8)));
        using (torch.no_grad()) graphed.Forward(torch.randn(6, 8));
    }

    [Fact]
    public void RandomRoutingIsRefusedByName()
    {
        var settings = new GateSettings { Experts = 4, TopK = 1, Noise = RouterNoise.Jitter };
        using var layer = new MoELayer(0, 8, 12, settings, 0.1, groupTokens: 0);
        var error = Assert.Throws<ArgumentException>(() => new GraphedMoELayer(layer, [6, 8], ScalarType.Float32, torch.CPU));
        Assert.Contains("noisy_gate_policy", error.Message);
    }
}
