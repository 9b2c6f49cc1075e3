using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Routing;

/// <summary>
/// A value computed outside autograd (as the slot kernels compute the load-balancing loss) takes the history of the
/// function it is, with the gradient it is given: the same gradients as autograd through the formula.
/// </summary>
public class AttachedGradientTests
{
    [Fact]
    public void APrecomputedLossGivesTheGradientsOfItsFormula()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var logits = torch.randn(6, 4).requires_grad_();
        var balance = torch.tensor(new[] { 0.5f, 1f, 2f, 0.25f });
        var probs = logits.softmax(-1);
        Tensor value;
        using (torch.no_grad()) value = (probs.sum(dim: 0) * balance).sum();
        var attached = AttachedGradient.Apply(probs, value, gradient => (balance * gradient).expand(6, 4));
        (attached * 3).backward();

        var again = logits.detach().requires_grad_();
        ((again.softmax(-1) * balance).sum() * 3).backward();

        Assert.True(attached.requires_grad);
        Assert.Equal(value.item<float>(), attached.item<float>());
        Assert.True(logits.grad!.allclose(again.grad!, rtol: 1e-5, atol: 1e-7), "the attached gradient did not reach the logits as the formula's does");
    }

    [Fact]
    public void WithNoGradientToTrackTheValueIsReturnedAsItIs()
    {
        using var scope = torch.NewDisposeScope();
        var value = torch.tensor(1.5f);
        Assert.Same(value, AttachedGradient.Apply(torch.ones(3), value, gradient => gradient));
        using (torch.no_grad())
            Assert.Same(value, AttachedGradient.Apply(torch.ones(3).requires_grad_(), value, gradient => gradient));
    }
}
