using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>The whole model a rank's sliced model copies its part of: non-expert parameters by name, experts by (layer, expert).</summary>
public interface IFullWeights
{
    /// <summary>A non-expert parameter, whole.</summary>
    Tensor Dense(string name);

    /// <summary>One expert's weights, whole: w1 [M, F] and w2 [F, M].</summary>
    (Tensor W1, Tensor W2) Expert(int layer, int expert);
}
