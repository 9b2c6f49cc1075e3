using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Serving;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>
/// The all-to-all variants move the same rows to the same experts, so they change nothing but speed.
/// Hierarchical vs flat (both with equal chunks): bit for bit equal, as the experts see the same rows in the same order.
/// Coordinated vs flat: not bit for bit on the CPU. Each TP rank routes N/L tokens instead of N, so the router and
/// every expert GEMM run over fewer rows, and libtorch's CPU GEMM gives a row a result that depends on how many rows
/// the call has (probed on this machine: x[:M]·W equals the first M rows of x·W only for M ≥ 12 with 2 threads,
/// M ≥ 4 with 1; a 1-row linear differs too: small M takes other kernels). What holds: the two agree within the
/// one-process tolerance (measured max gap 4.2e-7 on logits), and inside a tensor-slicing group every rank's logits
/// are bit for bit the same in both variants.
/// </summary>
public class AllToAllVariantTests(ITestOutputHelper output)
{
    const float Tolerance = 1e-5f;

    static torch.Tensor[] Logits(ServingLayout layout, Model.GptModel whole) => ServingHarness.OnRanks(layout, whole, (model, groups) =>
        model.Forward(ServingHarness.Batch(groups.ExpertRank, 3, 17), RoutingContext.Inference, null, null));

    [Theory]
    [InlineData(2, 2)]
    [InlineData(4, 1)]
    [InlineData(2, 4)]
    public void CoordinatedAndFlatExchangesAgree(int tensorSlicing, int expertParallel)
    {
        using var whole = ServingHarness.WholeModel();
        var layout = new ServingLayout(tensorSlicing, expertParallel);
        var coordinated = Logits(layout, whole);
        var flat = Logits(layout with { CoordinatedAllToAll = false }, whole);
        float worst = coordinated.Zip(flat, ServingHarness.MaxGap).Max();
        output.WriteLine($"coordinated vs flat L={tensorSlicing} G={expertParallel}: max gap {worst:E2}");
        Assert.True(worst < Tolerance, $"max gap {worst:E2}");
        ServingHarness.AssertSameWithinTensorGroups(layout, coordinated);
        ServingHarness.AssertSameWithinTensorGroups(layout, flat);
    }

    [Theory]
    [InlineData(1, 4, 2)]
    [InlineData(2, 4, 4)]
    public void HierarchicalAndFlatExchangesGiveTheSameBits(int tensorSlicing, int expertParallel, int nodeSize)
    {
        var hierarchical = new ServingLayout(tensorSlicing, expertParallel) { HierarchicalAllToAll = true, NodeSize = nodeSize };
        Assert.True(hierarchical.UsesHierarchy);
        using var whole = ServingHarness.WholeModel();
        var relayed = Logits(hierarchical, whole);
        var flat = Logits(new ServingLayout(tensorSlicing, expertParallel) { EqualChunks = true }, whole);
        for (int rank = 0; rank < relayed.Length; rank++) Assert.True(ServingHarness.Same(relayed[rank], flat[rank]), $"rank {rank}");
    }
}
