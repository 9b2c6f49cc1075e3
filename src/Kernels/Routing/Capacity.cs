namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// Expert capacity per routing group: ⌈k·G/E · factor⌉, at least the minimum capacity, rounded up to a
/// multiple of the alignment (8 or 16 keeps the batched GEMMs on whole matrix-unit tiles; 1 = exact).
/// </summary>
public static class Capacity
{
    public static int Compute(int groupTokens, int experts, int topK, double factor, int minCapacity, int alignment = 1)
    {
        // The small epsilon keeps 1.25·4096/32 = 160 exact instead of letting 160.00000000000003 round up.
        int capacity = (int)Math.Ceiling(topK * (double)groupTokens / experts * factor - 1e-9);
        capacity = Math.Max(capacity, minCapacity);
        return alignment > 1 ? (capacity + alignment - 1) / alignment * alignment : capacity;
    }
}
