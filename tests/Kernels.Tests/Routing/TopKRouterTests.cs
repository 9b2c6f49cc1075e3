using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static Orleans.MoE.Kernels.Tests.Routing.RouterFixture;

namespace Orleans.MoE.Kernels.Tests.Routing;

public class TopKRouterTests
{
    static readonly float P5 = (float)(Math.Exp(5) / (Math.Exp(5) + 1)); // softmax of [5, 0]

    [Fact]
    public void WithoutRtsTheLaterTokensOfAnOverfullExpertAreDropped()
    {
        // 6 tokens, 2 experts, factor 0.5 → capacity ⌈6/2·0.5⌉ = 2. Expert 0 is chosen by tokens 0,1,2,4.
        var settings = new GateSettings { Experts = 2, EvalCapacityFactor = 0.5, MinCapacity = 0, UseRts = false };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(2, 0, 0, 0, 1, 0, 1), 1, RoutingContext.Inference);

        Assert.Equal(2, table.Capacity);
        // Buffer rows: expert e, slot s → e·2 + s; dropped → row 4.
        Assert.Equal([0, 1, 4, 2, 4, 3], Longs(table.Destination));
        Assert.Equal([P5, P5, 0, P5, 0, P5], Floats(table.Weights), new FloatTolerance(1e-6f));
        Assert.Equal([4, 2], Longs(table.Load));
        Assert.Equal([2, 2], Longs(table.Kept));
    }

    [Fact]
    public void WithRtsTheKeptTokensAreARandomChoiceFixedByTheSeed()
    {
        var settings = new GateSettings { Experts = 2, CapacityFactor = 0.25, MinCapacity = 0, UseRts = true };
        using var router = IdentityRouter(settings);
        router.train();
        var tokens = OneHotTokens(2, Enumerable.Repeat(0L, 16).ToArray()); // all 16 want expert 0; capacity 2
        var keptSets = new HashSet<string>();
        for (long step = 0; step < 8; step++)
        {
            var a = router.Route(tokens, 1, new RoutingContext(7, step, 0));
            var b = router.Route(tokens, 1, new RoutingContext(7, step, 0));
            var kept = Longs(a.Destination).Select((d, i) => (d, i)).Where(p => p.d < a.DropRow).Select(p => p.i).ToArray();
            Assert.Equal(2, kept.Length);
            Assert.Equal(Longs(a.Destination), Longs(b.Destination)); // same seed, same choice
            keptSets.Add(string.Join(",", kept));
        }
        Assert.True(keptSets.Count > 1, "random token selection kept the same tokens for every seed");
        Assert.Contains(keptSets, s => s != "0,1"); // not simply first come, first served
    }

    [Fact]
    public void TopTwoRenormalisesOverTheKeptChoices()
    {
        // One token with logits [2, 1, 0, 0]: top-2 is experts 0 and 1 with weights p0/(p0+p1), p1/(p0+p1).
        var settings = new GateSettings { Experts = 4, TopK = 2, EvalCapacityFactor = 1.0, MinCapacity = 1 };
        using var router = IdentityRouter(settings);
        var table = router.Route(torch.tensor(new float[] { 2, 1, 0, 0 }).view(1, 4), 1, RoutingContext.Inference);
        float w0 = (float)(Math.E / (Math.E + 1)), w1 = (float)(1 / (Math.E + 1));
        Assert.Equal([0, 1], Longs(table.Experts));
        Assert.Equal([w0, w1], Floats(table.Weights), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void SecondChoicesQueueBehindEveryFirstChoice()
    {
        // Two tokens, both [2, 1, 0, 0]: capacity ⌈2·2/4·0.5⌉ = 1. Second choices queue after all first choices,
        // so token 1's first choice (expert 0) is dropped as well, token 0 keeps expert 0 and expert 1.
        var settings = new GateSettings { Experts = 4, TopK = 2, EvalCapacityFactor = 0.5, MinCapacity = 0, UseRts = false };
        using var router = IdentityRouter(settings);
        var x = torch.tensor(new float[] { 2, 1, 0, 0, 2, 1, 0, 0 }).view(2, 4);
        var table = router.Route(x, 1, RoutingContext.Inference);
        float w0 = (float)(Math.E / (Math.E + 1)), w1 = (float)(1 / (Math.E + 1));
        Assert.Equal(1, table.Capacity);
        Assert.Equal([w0, w1, 0, 0], Floats(table.Weights), new FloatTolerance(1e-6f));

        // With capacity 2 both first choices and both second choices fit.
        using var roomy = IdentityRouter(settings with { EvalCapacityFactor = 2.0 });
        var t2 = roomy.Route(x, 1, RoutingContext.Inference);
        Assert.Equal([w0, w1, w0, w1], Floats(t2.Weights), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void TopTwoDropsASecondChoiceAloneAndRenormalisesTheFirstToOne()
    {
        // Token 0 → (0, 1), token 1 → (1, 0) with capacity 1: first choices fill both experts, both seconds drop.
        var settings = new GateSettings { Experts = 2, TopK = 2, EvalCapacityFactor = 0.5, MinCapacity = 0, UseRts = false };
        using var router = IdentityRouter(settings);
        var x = torch.tensor(new float[] { 2, 1, 1, 2 }).view(2, 2);
        var table = router.Route(x, 1, RoutingContext.Inference);
        Assert.Equal(1, table.Capacity);
        Assert.Equal([1f, 0f, 1f, 0f], Floats(table.Weights), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void AuxLossIsExpertsTimesSumOfMeanProbabilityTimesFractionRouted()
    {
        // Logits [5,0], [5,0], [5,0], [0,5]: mean prob of expert 0 = (3·p + (1−p))/4, fraction routed 3/4.
        var settings = new GateSettings { Experts = 2, MinCapacity = 0 };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(2, 0, 0, 0, 1), 1, RoutingContext.Inference);
        double p = P5, me0 = (3 * p + (1 - p)) / 4, me1 = 1 - me0;
        double expected = 2 * (me0 * 0.75 + me1 * 0.25);
        Assert.Equal(expected, table.AuxLoss.item<float>(), 5);
    }

    [Fact]
    public void AuxLossIsAveragedOverRoutingGroups()
    {
        // Group 0 all to expert 0 (loss 2·p), group 1 balanced (loss 1): the mean of the two.
        var settings = new GateSettings { Experts = 2, MinCapacity = 0, DropTokens = false };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(2, 0, 0, 0, 1), 2, RoutingContext.Inference);
        double p = P5;
        Assert.Equal((2 * p + 1) / 2, table.AuxLoss.item<float>(), 5);
    }

    [Fact]
    public void DroplessCapacityGrowsToTheLargestExpertLoad()
    {
        var settings = new GateSettings { Experts = 4, MinCapacity = 0, DropTokens = false };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(4, 2, 2, 2, 2, 2, 0, 1, 3), 1, RoutingContext.Inference);
        Assert.Equal(5, table.Capacity);
        Assert.DoesNotContain(table.DropRow, Longs(table.Destination));
        Assert.Equal([1, 1, 5, 1], Longs(table.Kept));
    }

    [Fact]
    public void GroupsGetTheirOwnCapacityAndBufferRows()
    {
        // Two groups of 4 tokens, 2 experts, capacity ⌈4/2·1⌉ = 2 per group. Group 0 sends 3 to expert 0 (one drops).
        var settings = new GateSettings { Experts = 2, EvalCapacityFactor = 1.0, MinCapacity = 0, UseRts = false };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(2, 0, 0, 0, 1, 1, 0, 1, 1), 2, RoutingContext.Inference);
        // Row = e·(groups·C) + g·C + slot = e·4 + g·2 + slot; drop row 8.
        Assert.Equal([0, 1, 8, 4, 6, 2, 7, 8], Longs(table.Destination));
    }

    [Fact]
    public void ZLossIsMeanSquaredLogSumExp()
    {
        var settings = new GateSettings { Experts = 2, MinCapacity = 0 };
        using var router = IdentityRouter(settings);
        var table = router.Route(OneHotTokens(2, 0, 1), 1, RoutingContext.Inference);
        double lse = Math.Log(Math.Exp(5) + 1);
        Assert.Equal(lse * lse, table.ZLoss.item<float>(), 4);
    }

    [Fact]
    public void RsampleNoiseChangesChoicesOnlyWhileTraining()
    {
        var settings = new GateSettings { Experts = 4, MinCapacity = 0, DropTokens = false, Noise = RouterNoise.RSample };
        using var router = IdentityRouter(settings);
        var x = torch.zeros(64, 4); // equal logits: only the Gumbel noise decides
        var eval = router.Route(x, 1, RoutingContext.Inference);
        Assert.Single(Longs(eval.Experts).Distinct()); // ties broken the same way for every token
        router.train();
        var noisy = router.Route(x, 1, new RoutingContext(1, 0, 0));
        Assert.True(Longs(noisy.Experts).Distinct().Count() > 1);
    }
}

internal sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
{
    public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

    public int GetHashCode(float obj) => 0;
}
