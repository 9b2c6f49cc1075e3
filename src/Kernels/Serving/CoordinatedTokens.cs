using Orleans.MoE.Kernels.Comm;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// DeepSpeed-MoE's parallelism-coordinated all-to-all (§5.3). After a tensor-sliced block every rank of the
/// tensor-slicing group holds the same tokens, so rank t routes only the t-th share of them and exchanges it with the
/// ranks of the same t (p/L peers), and one all-gather inside the group (L peers) gives every rank all outputs again:
/// O(p/L) + O(L) instead of every rank exchanging every token with all p ranks.
/// </summary>
public static class CoordinatedTokens
{
    /// <summary>
    /// Runs <paramref name="moe"/> on this rank's share of <paramref name="tokens"/> [N, M] and returns the outputs of
    /// all N. N need not divide by L (a decode step may carry one token): zero rows pad every rank's share to the same
    /// size, which the all-gather needs, and are cut off again. Routing is dropless and per token, so padding rows
    /// cannot change what the real tokens get.
    /// </summary>
    public static Tensor Run(Tensor tokens, ICommunicator group, Func<Tensor, Tensor> moe)
    {
        long n = tokens.shape[0], m = tokens.shape[1];
        int ranks = group.Size;
        long share = (n + ranks - 1) / ranks;
        var padded = share * ranks == n ? tokens : torch.cat([tokens, tokens.new_zeros(share * ranks - n, m)], 0);
        var output = moe(padded.narrow(0, group.Rank * share, share)).contiguous();
        var gathered = torch.empty(share * ranks, m, output.dtype, output.device);
        group.AllGather(output, gathered);
        return gathered.narrow(0, 0, n);
    }
}
