using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Comm;

/// <summary>Row counts and offsets of the chunks of an all-to-all, checked against the tensors they describe.</summary>
public static class RowSplits
{
    /// <summary>The given counts, or equal splits of the tensor's rows over <paramref name="ranks"/>.</summary>
    public static long[] Resolve(Tensor tensor, long[]? rows, int ranks, string name)
    {
        long total = tensor.dim() == 0 ? 1 : tensor.shape[0];
        if (rows is null)
        {
            if (total % ranks != 0) throw new ArgumentException($"{name} has {total} rows, not a multiple of the {ranks} ranks");
            return Enumerable.Repeat(total / ranks, ranks).ToArray();
        }
        if (rows.Length != ranks) throw new ArgumentException($"{name} has {rows.Length} row counts for {ranks} ranks");
        if (rows.Any(r => r < 0) || rows.Sum() != total)
            throw new ArgumentException($"{name} row counts [{string.Join(", ", rows)}] do not add up to its {total} rows");
        return rows;
    }

    public static long[] Offsets(long[] rows)
    {
        var offsets = new long[rows.Length];
        for (int i = 1; i < rows.Length; i++) offsets[i] = offsets[i - 1] + rows[i - 1];
        return offsets;
    }

    /// <summary>Elements in one row (the product of the dimensions after the first).</summary>
    public static long RowElements(Tensor tensor) => tensor.dim() <= 1 ? 1 : tensor.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
}
