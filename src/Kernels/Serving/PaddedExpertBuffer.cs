using Orleans.MoE.Kernels.Comm;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// A dropless (packed) expert buffer padded to one capacity for the whole expert-parallel group, so that it crosses
/// the exchange in equal chunks: the layout <see cref="HierarchicalTokenExchange"/> relays through a node (chunks of
/// different sizes would need every pair's counts on the relaying rank). The capacity is the group's largest
/// expert load, so nothing is dropped; the padding rows are zeros whose outputs nobody reads.
/// </summary>
public static class PaddedExpertBuffer
{
    /// <summary>Packed [Σ sizes, M] → padded [E, C, M] → <paramref name="experts"/> → back to packed [Σ sizes, M].</summary>
    public static Tensor Run(Tensor packed, long[] sizes, ITokenExchange exchange, Func<Tensor, Tensor> experts)
    {
        long capacity = CommonCapacity(sizes, exchange, packed.device);
        long m = packed.shape[1];
        using var rows = torch.tensor(PaddedRows(sizes, capacity), device: packed.device);
        var padded = packed.new_zeros(sizes.Length * capacity, m).index_copy_(0, rows, packed).view(sizes.Length, capacity, m);
        return experts(padded).reshape(sizes.Length * capacity, m).index_select(0, rows);
    }

    /// <summary>
    /// The largest expert load on any rank of the group. Each rank sends its own to every rank through the exchange,
    /// the one collective a token exchange offers.
    /// </summary>
    static long CommonCapacity(long[] sizes, ITokenExchange exchange, Device device)
    {
        using var mine = torch.full(exchange.Size, 1, sizes.Max(), ScalarType.Int64, device);
        using var all = exchange.Exchange(mine);
        return Math.Max(1, all.max().item<long>());
    }

    /// <summary>Row of the padded buffer for each packed row: expert e's i-th row goes to e·C + i.</summary>
    static long[] PaddedRows(long[] sizes, long capacity)
    {
        var rows = new long[sizes.Sum()];
        long at = 0;
        for (int e = 0; e < sizes.Length; e++)
            for (long i = 0; i < sizes[e]; i++) rows[at++] = e * capacity + i;
        return rows;
    }
}
