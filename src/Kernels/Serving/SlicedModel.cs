using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// Builds one rank's part of a serving replica: attention and dense MLPs tensor-sliced, this rank's experts (or expert
/// slices), embeddings, layer norms, routers, residual coefficients and the LM head whole, wired to the replica's
/// groups. From a whole model in memory, or from a checkpoint without reading other ranks' experts.
/// </summary>
public static class SlicedModel
{
    /// <summary>This rank's part of <paramref name="full"/> (which holds every expert), on the same device.</summary>
    public static GptModel FromModel(GptModel full, ServingGroups groups)
    {
        var device = full.parameters().First().device;
        return Build(full.Config, full.MoeConfig, full.VocabSize, groups, new ModelWeights(full), device, full.ComputeType);
    }

    /// <summary>This rank's part of a saved model, on <paramref name="device"/>.</summary>
    public static GptModel FromCheckpoint(ModelCheckpoint checkpoint, ServingGroups groups, Device device)
    {
        using var weights = new CheckpointWeights(checkpoint);
        return Build(checkpoint.Config.Model, checkpoint.Config.Moe, checkpoint.Tokenizer.VocabSize, groups, weights, device,
            ComputePrecision.For(checkpoint.Config.Training.Precision, device));
    }

    static GptModel Build(ModelConfig config, MoEConfig moe, int vocabSize, ServingGroups groups, IFullWeights source, Device device, ScalarType computeType)
    {
        var layout = groups.Layout;
        layout.Validate(config, moe);
        // Built with the shapes of this rank's part; the random initial values are overwritten below.
        var model = new GptModel(config, moe, vocabSize, expertShard: groups.ShardOf, tensorSlice: groups.Slice);
        using (torch.no_grad())
        {
            CopyDense(model, source, groups);
            CopyExperts(model, source);
        }
        foreach (var layer in model.MoeLayers)
        {
            layer.Exchange = groups.Exchange;
            layer.CoordinationGroup = layout.CoordinatedAllToAll && layout.TensorSlicing > 1 ? groups.TensorGroup : null;
            layer.EqualChunks = layout.PadsExpertBuffers;
        }
        model.to(device);
        model.ComputeType = computeType;
        model.PrepareForInference();
        return model;
    }

    static void CopyDense(GptModel model, IFullWeights source, ServingGroups groups)
    {
        var experts = model.MoeLayers.SelectMany(m => new[] { m.Experts.W1, m.Experts.W2 }).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (experts.Contains(parameter)) continue;
            var part = TensorSlicing.PartOf(name, source.Dense(name), groups.Slice);
            if (!part.shape.SequenceEqual(parameter.shape))
                throw new InvalidOperationException($"{name}: this rank's part of the whole model's [{string.Join(", ", source.Dense(name).shape)}] is [{string.Join(", ", part.shape)}], the sliced model has [{string.Join(", ", parameter.shape)}]");
            parameter.copy_(part);
        }
    }

    static void CopyExperts(GptModel model, IFullWeights source)
    {
        foreach (var layer in model.MoeLayers)
        {
            var bank = layer.Experts;
            var shard = bank.Shard;
            long width = bank.W1.shape[2];
            for (int j = 0; j < shard.Count; j++)
            {
                // One expert at a time: what was read for it is freed before the next.
                using var scope = torch.NewDisposeScope();
                var (w1, w2) = source.Expert(layer.LayerIndex, shard.First + j);
                bank.W1[j].copy_(w1.narrow(1, shard.Slice * width, width));
                bank.W2[j].copy_(w2.narrow(0, shard.Slice * width, width));
            }
        }
    }
}
