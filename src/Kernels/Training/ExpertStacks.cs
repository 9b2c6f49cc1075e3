using Orleans.MoE.Kernels.Experts;
using Orleans.MoE.Kernels.Model;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// An expert bank's training state as [local experts, …] stacks: w1 and w2 with their AdamW moments, in the order
/// checkpoints store them. Whatever moves experts between ranks (a checkpoint, a generation handoff) moves these six.
/// </summary>
public static class ExpertStacks
{
    public const string Average = ".exp_avg", Square = ".exp_avg_sq";

    public static (string Name, Tensor Tensor)[] Of(GptModel model, AdamWOptimizer optimizer, ExpertBank bank)
    {
        var (m1, v1) = optimizer.Moments[NameOf(model, bank.W1)];
        var (m2, v2) = optimizer.Moments[NameOf(model, bank.W2)];
        return [("w1", bank.W1), ("w1" + Average, m1), ("w1" + Square, v1), ("w2", bank.W2), ("w2" + Average, m2), ("w2" + Square, v2)];
    }

    /// <summary>The model's name for one of its parameters (the optimiser keys its moments by it).</summary>
    public static string NameOf(GptModel model, Tensor parameter) =>
        model.named_parameters().First(p => ReferenceEquals(p.parameter, parameter)).name;

    /// <summary>Every parameter that is not an expert weight, by name, in the model's order (the same on every rank).</summary>
    public static IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> Dense(GptModel model)
    {
        var experts = model.MoeLayers.SelectMany(m => new[] { m.Experts.W1, m.Experts.W2 }).ToHashSet(ReferenceEqualityComparer.Instance);
        return model.named_parameters().Where(p => !experts.Contains(p.parameter)).Select(p => (p.name, p.parameter));
    }
}
