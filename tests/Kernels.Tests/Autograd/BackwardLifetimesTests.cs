using Orleans.MoE.Kernels.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Autograd;

/// <summary>
/// The lifetimes a custom backward needs: incoming gradients released once used, the ones handed back alive until
/// libtorch has taken them (the next backward on the thread), nothing made inside leaked.
/// </summary>
public class BackwardLifetimesTests
{
    [Fact]
    public void IncomingGradientsAreDisposedAndHandedBackOnesLiveUntilTheNextBackward()
    {
        var incoming = torch.ones(3);
        Tensor? scratch = null;
        var first = BackwardLifetimes.Run([incoming], () =>
        {
            scratch = incoming * 2;
            return [scratch + 1, null];
        });
        Assert.True(incoming.IsInvalid);
        Assert.True(scratch!.IsInvalid);
        Assert.Null(first[1]);
        Assert.Equal(3f, first[0].sum().item<float>() / 3);

        var other = torch.zeros(2);
        var second = BackwardLifetimes.Run([other], () => [other]);
        Assert.True(first[0].IsInvalid);
        Assert.False(other.IsInvalid);
        Assert.Same(other, second[0]);
    }

    [Fact]
    public void AFunctionUsingItGivesTheSameGradientsStepAfterStep()
    {
        // RowGather's backward runs through BackwardLifetimes: three backwards in a row, each with its own graph.
        var source = torch.arange(12, dtype: ScalarType.Float32).view(4, 3).requires_grad_();
        var index = torch.tensor(new long[] { 2, 0, 3, 1 });
        var inverse = torch.tensor(new long[] { 1, 3, 0, 2 });
        for (int step = 0; step < 3; step++)
        {
            using var scope = torch.NewDisposeScope();
            source.grad = null!;
            var picked = RowGather.Apply(source, index, () => inverse);
            (picked * torch.arange(1, 5, dtype: ScalarType.Float32).unsqueeze(1)).sum().backward();
            // Row r of the source was picked by output row inverse[r], whose weight is inverse[r] + 1.
            var expected = (inverse + 1).to_type(ScalarType.Float32).unsqueeze(1).expand(4, 3);
            Assert.True(source.grad!.allclose(expected), $"step {step}: {source.grad!.str()}");
        }
    }
}
