using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Training;
using TorchSharp;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>
/// A rank loads its part of a saved model straight from the checkpoint's files. Tolerance and measured gap as in
/// <see cref="SlicedModelEquivalenceTests"/> (measured here 6.0e-7 over 16 ranks, tensor and expert slicing).
/// </summary>
public class SlicedCheckpointTests(ITestOutputHelper output)
{
    [Fact]
    public void RanksLoadTheirSlicesFromACheckpoint()
    {
        using var whole = ServingHarness.WholeModel();
        var optimizer = new AdamWOptimizer(whole.named_parameters(), 0.9, 0.95, 1e-8, 0.1);
        string path = ModelCheckpoint.Save(TinyJobs.TempDirectory(), ServingHarness.Config, ServingHarness.Config.Model.Tokenizer, whole, optimizer, 0, new SamplerPosition(0, 0));
        var checkpoint = ModelCheckpoint.Open(path);
        // 16 ranks: attention and MLPs in halves, the 4-expert layers' experts in halves, the 8-expert layer one each.
        var layout = new ServingLayout(2, 8);
        var logits = ThreadRanks.Run(layout.WorldSize, replica =>
        {
            using var groups = ServingGroups.Create(replica, layout);
            using var model = SlicedModel.FromCheckpoint(checkpoint, groups, torch.CPU);
            using var noGrad = torch.no_grad();
            return model.Forward(ServingHarness.Batch(groups.ExpertRank, 2, 20), RoutingContext.Inference, null, null);
        });
        float worst = 0;
        using (torch.no_grad())
            for (int rank = 0; rank < layout.WorldSize; rank++)
                worst = Math.Max(worst, ServingHarness.MaxGap(logits[rank], whole.Forward(ServingHarness.Batch(layout.ExpertRank(rank), 2, 20), RoutingContext.Inference, null, null)));
        output.WriteLine($"from checkpoint L=2 G=8: max gap {worst:E2}");
        Assert.True(worst < 1e-5f, $"max gap {worst:E2}");
    }
}
