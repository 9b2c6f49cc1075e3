using Orleans.MoE.Kernels.Model;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Layers;

public class ParameterInitTests
{
    [Fact]
    public void WeightsDependOnlyOnTheJobsGeneratorNotOnWhatElseTheProcessDrew()
    {
        var config = Training.TinyJobs.Load("tiny-pr-moe", 1);
        using var first = new torch.Generator(1234);
        using var a = new GptModel(config.Model, config.Moe, 257, first);
        torch.randn(1000); // another job (or test) drawing from torch's global generator in between
        using var second = new torch.Generator(1234);
        using var b = new GptModel(config.Model, config.Moe, 257, second);
        foreach (var (x, y) in a.parameters().Zip(b.parameters()))
            Assert.True(x.eq(y).all().item<bool>());
        using var other = new torch.Generator(99);
        using var c = new GptModel(config.Model, config.Moe, 257, other);
        Assert.False(a.parameters().First().eq(c.parameters().First()).all().item<bool>());
    }
}
