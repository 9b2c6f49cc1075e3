namespace Orleans.MoE.Kernels.Routing;

/// <summary>Expert capacity per routing group: ⌈k·G/E · factor⌉, at least the minimum capacity.</summary>
public static class Capacity
{
    public static int Compute(int groupTokens, int experts, int topK, double factor, int minCapacity)
    {
        // The small epsilon keeps 1.25·4096/32 = 160 exact instead of letting 160.00000000000003 round up.
        int capacity = (int)Math.Ceiling(topK * (double)groupTokens / experts * factor - 1e-9);
        return Math.Max(capacity, minCapacity);
    }
}
