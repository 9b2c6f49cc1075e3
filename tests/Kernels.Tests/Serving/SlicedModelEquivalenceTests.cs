using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>
/// A replica spread over ranks serves the logits one process would. Tolerance: 1e-5 absolute on fp32 logits. The ranks
/// add the same products in another order (slices summed by the all-reduce, expert slices summed on return, GEMMs over
/// other row counts), which moves fp32 results by ~1e-7 relative per operation; measured max gaps 4.5e-7 … 7.2e-7 over
/// these layouts, with and without a cache. A wrong slice or expert moves them by far more
/// (<see cref="ExpertMixUpExceedsTheTolerance"/>).
/// </summary>
public class SlicedModelEquivalenceTests(ITestOutputHelper output)
{
    const float Tolerance = 1e-5f;

    public static TheoryData<int, int, bool> Layouts => new()
    {
        { 2, 2, true },
        { 2, 2, false },
        { 1, 4, true },
        { 4, 1, true },
        // Expert slicing: the 4-expert layers are split in two over 8 expert-parallel ranks, the 8-expert layer is not.
        { 1, 8, true },
        { 2, 4, true },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void SlicedReplicaGivesTheOneProcessLogits(int tensorSlicing, int expertParallel, bool coordinated)
    {
        var layout = new ServingLayout(tensorSlicing, expertParallel) { CoordinatedAllToAll = coordinated };
        using var whole = ServingHarness.WholeModel();
        var logits = ServingHarness.OnRanks(layout, whole, (model, groups) =>
            model.Forward(ServingHarness.Batch(groups.ExpertRank, 2, 24), RoutingContext.Inference, null, null));
        float worst = 0;
        using (torch.no_grad())
            for (int rank = 0; rank < layout.WorldSize; rank++)
            {
                var reference = whole.Forward(ServingHarness.Batch(layout.ExpertRank(rank), 2, 24), RoutingContext.Inference, null, null);
                worst = Math.Max(worst, ServingHarness.MaxGap(logits[rank], reference));
            }
        output.WriteLine($"L={tensorSlicing} G={expertParallel} coordinated={coordinated}: max gap {worst:E2}");
        Assert.True(worst < Tolerance, $"max gap {worst:E2}");
        ServingHarness.AssertSameWithinTensorGroups(layout, logits);
    }

    /// <summary>
    /// Prefill then decode steps with a KV cache (batch of 3, one token per sequence per step: the coordinated
    /// exchange pads 3 tokens to a multiple of L) give the logits of the one-process model decoding the same way.
    /// </summary>
    [Theory]
    [InlineData(2, 2)]
    [InlineData(4, 1)]
    [InlineData(1, 8)]
    public void DecodingWithACacheGivesTheOneProcessLogits(int tensorSlicing, int expertParallel)
    {
        var layout = new ServingLayout(tensorSlicing, expertParallel);
        using var whole = ServingHarness.WholeModel();
        var logits = ServingHarness.OnRanks(layout, whole, (model, groups) => Decode(model, ServingHarness.Batch(groups.ExpertRank, 3, 9)));
        float worst = 0;
        using (torch.no_grad())
            for (int rank = 0; rank < layout.WorldSize; rank++)
                worst = Math.Max(worst, ServingHarness.MaxGap(logits[rank], Decode(whole, ServingHarness.Batch(layout.ExpertRank(rank), 3, 9))));
        output.WriteLine($"decode L={tensorSlicing} G={expertParallel}: max gap {worst:E2}");
        Assert.True(worst < Tolerance, $"max gap {worst:E2}");
        ServingHarness.AssertSameWithinTensorGroups(layout, logits);
    }

    /// <summary>
    /// Continuous batching's cache: three requests prefilled one at a time to different lengths, then decoded together
    /// with every row at its own position, as the generation engine does.
    /// </summary>
    [Theory]
    [InlineData(2, 2)]
    [InlineData(2, 4)]
    public void DecodingRowsAtDifferentPositionsGivesTheOneProcessLogits(int tensorSlicing, int expertParallel)
    {
        var layout = new ServingLayout(tensorSlicing, expertParallel);
        using var whole = ServingHarness.WholeModel();
        var logits = ServingHarness.OnRanks(layout, whole, (model, groups) => DecodeSlots(model, ServingHarness.Batch(groups.ExpertRank, 3, 10)));
        float worst = 0;
        using (torch.no_grad())
            for (int rank = 0; rank < layout.WorldSize; rank++)
                worst = Math.Max(worst, ServingHarness.MaxGap(logits[rank], DecodeSlots(whole, ServingHarness.Batch(layout.ExpertRank(rank), 3, 10))));
        output.WriteLine($"slot decode L={tensorSlicing} G={expertParallel}: max gap {worst:E2}");
        Assert.True(worst < Tolerance, $"max gap {worst:E2}");
        ServingHarness.AssertSameWithinTensorGroups(layout, logits);
    }

    /// <summary>Prompts of 3, 5 and 7 tokens prefilled alone, then 3 decode steps of all three: last logits [3 + 9, V].</summary>
    static Tensor DecodeSlots(Model.GptModel model, Tensor tokens)
    {
        int[] slots = [0, 1, 2];
        long[] prompts = [3, 5, 7];
        using var cache = new SlotKvCache(model.Config.Layers, slots.Length, model.Config.ContextLength);
        var last = new List<Tensor>();
        foreach (int slot in slots)
            last.Add(model.Forward(tokens.narrow(0, slot, 1).narrow(1, 0, prompts[slot]), RoutingContext.Inference, null, cache.Rows([slot])).select(1, -1));
        for (int step = 0; step < 3; step++)
        {
            var next = tokens.gather(1, torch.tensor(prompts.Select(p => p + step).ToArray()).view(3, 1));
            last.Add(model.Forward(next, RoutingContext.Inference, null, cache.Rows(slots)).select(1, 0));
        }
        return torch.cat(last, 0);
    }

    /// <summary>The test sees a mistake: two experts of the first MoE layer swapped move the logits by 1.4e-1 (measured), over 100× the tolerance.</summary>
    [Fact]
    public void ExpertMixUpExceedsTheTolerance()
    {
        using var whole = ServingHarness.WholeModel();
        using var noGrad = torch.no_grad();
        var tokens = ServingHarness.Batch(0, 2, 24);
        var reference = whole.Forward(tokens, RoutingContext.Inference, null, null);
        var bank = whole.MoeLayers.First().Experts;
        var first = bank.W1[0].clone();
        bank.W1[0].copy_(bank.W1[1]);
        bank.W1[1].copy_(first);
        float moved = ServingHarness.MaxGap(whole.Forward(tokens, RoutingContext.Inference, null, null), reference);
        output.WriteLine($"swapped experts move logits by {moved:E2}");
        Assert.True(moved > 100 * Tolerance, $"moved {moved:E2}");
    }

    /// <summary>Prefill of 5 positions, then one token per step: the logits of every step, [3, 9, V].</summary>
    static Tensor Decode(Model.GptModel model, Tensor tokens)
    {
        int[] rows = Enumerable.Range(0, (int)tokens.shape[0]).ToArray();
        using var cache = new SlotKvCache(model.Config.Layers, rows.Length, model.Config.ContextLength);
        var steps = new List<Tensor> { model.Forward(tokens.narrow(1, 0, 5), RoutingContext.Inference, null, cache.Rows(rows)) };
        for (int t = 5; t < tokens.shape[1]; t++)
            steps.Add(model.Forward(tokens.narrow(1, t, 1), RoutingContext.Inference, null, cache.Rows(rows)));
        return torch.cat(steps, 1);
    }
}
