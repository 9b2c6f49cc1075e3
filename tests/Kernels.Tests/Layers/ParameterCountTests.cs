using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Model;

namespace Orleans.MoE.Kernels.Tests.Layers;

public class ParameterCountTests
{
    [Fact]
    public void PyramidResidualCountsMatchTheHandCount()
    {
        // V=257, M=8, F=16, 4 layers, MoE at 1 (2 experts) and 3 (4 experts), residual, top-1, learned positions.
        var model = new ModelConfig { Layers = 4, DModel = 8, Heads = 2, DFf = 16, ContextLength = 16 };
        var moe = new MoEConfig { Experts = ExpertCounts.Parse("2x1,4x1"), Residual = true };
        // Embeddings 257·8 + 16·8 = 2184; final LN 16. Per block: 2 LN = 32, attention 8·24+24+64+8 = 288.
        // Dense MLP 8·16+16+16·8+8 = 280 → dense block 600. One expert = 2·8·16 = 256.
        // Layer 1: 32+288 + router 16 + 2·256 + residual MLP 280 + coefficient 18 = 1146 (active: one expert → 890).
        // Layer 3: 32+288 + router 32 + 4·256 + 298 = 1674 (active 906).
        const long total = 2184 + 16 + 600 + 1146 + 600 + 1674, active = 2184 + 16 + 600 + 890 + 600 + 906;
        Assert.Equal(new ParameterCount(total, active), ParameterCount.FromConfig(model, moe, 257));
        using var gpt = new GptModel(model, moe, 257);
        Assert.Equal(new ParameterCount(total, active), ParameterCount.Of(gpt));
    }

    [Fact]
    public void PaperPrMoe32By64HasAboutFourBillionParameters()
    {
        // 350M + PR-MoE-32/64 (DeepSpeed-MoE Table 3): 24 layers, width 1024, MoE every other layer, 10×32 then 2×64.
        var model = new ModelConfig { Layers = 24, DModel = 1024, Heads = 16, DFf = 4096, ContextLength = 2048 };
        var moe = new MoEConfig { Experts = ExpertCounts.Parse("32x10,64x2"), Residual = true };
        var count = ParameterCount.FromConfig(model, moe, 50304);
        Assert.InRange(count.Total, 3.9e9, 4.3e9);
    }
}
