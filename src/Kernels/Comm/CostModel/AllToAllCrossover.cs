namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>The message size at which flat all-to-all catches up with hierarchical on a given cluster.</summary>
public static class AllToAllCrossover
{
    /// <summary>The largest size searched, 1 TiB per rank.</summary>
    public const double MaxBytes = 1L << 40;

    /// <summary>
    /// The bytes per rank below which hierarchical is faster: null when it is not faster even at 1 byte,
    /// <see cref="MaxBytes"/> when it is faster at every size up to there. The search steps up by 2^(1/8) and
    /// bisects the first step where flat becomes at least as fast; in the default model the difference is linear
    /// in the size, so there is at most one crossing.
    /// </summary>
    public static double? HierarchicalFasterBelow(AllToAllCostModel model, ClusterShape shape)
    {
        bool HierarchicalFaster(double bytes) => model.Hierarchical(shape, bytes).TotalSeconds < model.Flat(shape, bytes).TotalSeconds;

        if (!HierarchicalFaster(1)) return null;
        double step = Math.Pow(2, 0.125);
        for (double low = 1; low < MaxBytes; low *= step)
        {
            double high = Math.Min(low * step, MaxBytes);
            if (HierarchicalFaster(high)) continue;
            for (int i = 0; i < 40; i++)
            {
                double middle = Math.Sqrt(low * high);
                if (HierarchicalFaster(middle)) low = middle;
                else high = middle;
            }
            return high;
        }
        return MaxBytes;
    }
}
