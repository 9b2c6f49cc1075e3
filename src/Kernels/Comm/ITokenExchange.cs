using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// The all-to-all of an expert-parallel group with equal chunks: rows [Size·n, …] ordered by destination rank in,
/// rows [Size·n, …] ordered by source rank out. Not differentiable by itself; <see cref="TokenExchangeFunction"/>
/// makes it so.
/// </summary>
public interface ITokenExchange
{
    int Size { get; }

    /// <summary>Short description for logs: "flat over 4" or "hierarchical 2 × 2".</summary>
    string Describe();

    Tensor Exchange(Tensor rows);

    /// <summary>
    /// The same with chunks of different sizes (dropless routing): <paramref name="sendRows"/>[i] rows go to rank i,
    /// <paramref name="receiveRows"/>[i] come from it.
    /// </summary>
    Tensor Exchange(Tensor rows, long[] sendRows, long[] receiveRows);
}
