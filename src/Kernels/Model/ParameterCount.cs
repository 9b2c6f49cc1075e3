using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Model;

/// <summary>Total parameters and parameters active per token (each token runs k of a layer's E experts).</summary>
public readonly record struct ParameterCount(long Total, long ActivePerToken)
{
    /// <summary>
    /// Counted from the model's actual tensors; a rank that holds a shard of a layer's experts counts the whole
    /// layer (every expert has the shape of the ones it holds).
    /// </summary>
    public static ParameterCount Of(GptModel model)
    {
        long absent = model.MoeLayers.Sum(m => (long)(m.Router.Settings.Experts - m.Experts.Count) * m.Experts.ParametersPerExpert);
        long total = model.parameters().Sum(p => p.numel()) + absent;
        long inactive = model.MoeLayers.Sum(m => (long)(m.Router.Settings.Experts - m.Router.Settings.TopK) * m.Experts.ParametersPerExpert);
        return new ParameterCount(total, total - inactive);
    }

    /// <summary>Worked out from the configuration alone (what the tests check the model against).</summary>
    public static ParameterCount FromConfig(ModelConfig model, MoEConfig moe, int vocabSize)
    {
        long m = model.DModel, f = model.DFf;
        long embeddings = vocabSize * m * (model.TieEmbeddings ? 1 : 2) + (model.Positions == "learned" ? model.ContextLength * m : 0);
        long layerNorm = 2 * m;
        long attention = m * 3 * m + 3 * m + m * m + m;
        long dense = m * f + f + f * m + m;
        long total = embeddings + layerNorm, active = total;
        var moeLayers = moe.Layers.Resolve(model.Layers);
        var counts = moe.Experts.ForLayers(moeLayers.Count);
        long ef = moe.ExpertFfn > 0 ? moe.ExpertFfn : f;
        for (int i = 0; i < model.Layers; i++)
        {
            long common = 2 * layerNorm + attention;
            int moeIndex = moeLayers.ToList().IndexOf(i);
            if (moeIndex < 0)
            {
                total += common + dense;
                active += common + dense;
                continue;
            }
            long e = counts[moeIndex], expert = 2 * m * ef, router = e * m;
            long residual = moe.Residual ? dense + 2 * m + 2 : 0;
            total += common + router + e * expert + residual;
            active += common + router + moe.TopK * expert + residual;
        }
        return new ParameterCount(total, active);
    }
}
