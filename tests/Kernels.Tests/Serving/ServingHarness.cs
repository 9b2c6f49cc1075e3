using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tests.Training;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Tests.Serving;

/// <summary>
/// The tiny PR-MoE (6 layers, MoE layers of 4, 4 and 8 residual experts) from a fixed seed, served by one process and
/// by thread ranks in a serving layout. Each tensor-slicing group (expert-parallel rank g) serves its own batch, as a
/// replica's node does, so the expert exchange carries different loads from every rank.
/// </summary>
internal static class ServingHarness
{
    public static JobConfig Config { get; } = TinyJobs.Load("tiny-pr-moe", 1);

    public static int VocabSize { get; } = TokenizerFactory.Create(Config.Model.Tokenizer).VocabSize;

    /// <summary>The whole model, dropless like every serving model.</summary>
    public static GptModel WholeModel()
    {
        using var init = new Generator((ulong)Config.Seed);
        var model = new GptModel(Config.Model, Config.Moe, VocabSize, init);
        model.PrepareForInference();
        return model;
    }

    /// <summary>Tokens [rows, length] of the batch expert-parallel rank <paramref name="group"/> serves.</summary>
    public static Tensor Batch(int group, int rows, int length)
    {
        using var gen = new Generator((ulong)(100 + group));
        return torch.randint(0, VocabSize, [rows, length], generator: gen);
    }

    /// <summary>Runs <paramref name="serve"/> on every rank of the layout (under no_grad) and returns each rank's tensor.</summary>
    public static Tensor[] OnRanks(ServingLayout layout, GptModel whole, Func<GptModel, ServingGroups, Tensor> serve) =>
        ThreadRanks.Run(layout.WorldSize, replica =>
        {
            using var groups = ServingGroups.Create(replica, layout);
            using var model = SlicedModel.FromModel(whole, groups);
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            return serve(model, groups).MoveToOuterDisposeScope();
        }, TimeSpan.FromMinutes(2));

    /// <summary>Bit for bit the same (torch.equal).</summary>
    public static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>After every all-reduce and all-gather the ranks of a tensor-slicing group hold the same bits.</summary>
    public static void AssertSameWithinTensorGroups(ServingLayout layout, Tensor[] perRank)
    {
        for (int rank = 0; rank < perRank.Length; rank++)
        {
            int first = rank - layout.TensorRank(rank);
            Assert.True(Same(perRank[rank], perRank[first]), $"rank {rank} differs from rank {first} of its tensor-slicing group");
        }
    }

    public static float MaxGap(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
