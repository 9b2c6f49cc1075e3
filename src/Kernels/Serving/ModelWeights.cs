using Orleans.MoE.Kernels.Model;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>The weights of a whole model in memory (one that holds every expert).</summary>
public sealed class ModelWeights(GptModel model) : IFullWeights
{
    readonly Dictionary<string, Tensor> parameters = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    public Tensor Dense(string name) =>
        parameters.TryGetValue(name, out var p) ? p : throw new ArgumentException($"the whole model has no parameter '{name}'");

    public (Tensor W1, Tensor W2) Expert(int layer, int expert)
    {
        var bank = model.MoeLayers.Single(m => m.LayerIndex == layer).Experts;
        if (!bank.Shard.IsWhole) throw new ArgumentException($"the model to slice holds only part of layer {layer}'s experts");
        return (bank.W1[expert], bank.W2[expert]);
    }
}
