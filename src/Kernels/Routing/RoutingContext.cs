namespace Orleans.MoE.Kernels.Routing;

/// <summary>
/// Identifies one forward pass for the router's random streams: noise and random token selection of routing
/// group g come from a generator seeded by (seed, layer, step, first group + g), so any layout that routes the
/// same group with the same index draws the same numbers (what makes parallel runs equal a single process). It also
/// says whether the forward may read back to the host (<see cref="SyncFree"/>).
/// </summary>
public readonly record struct RoutingContext(long Seed, long Step, long FirstGroup)
{
    public static RoutingContext Inference { get; } = new(0, 0, 0);

    /// <summary>Inference that a captured CUDA graph can hold (see <see cref="SyncFree"/>).</summary>
    public static RoutingContext SyncFreeInference { get; } = new(0, 0, 0) { SyncFree = true };

    /// <summary>
    /// The forward must read nothing back to the host (a captured CUDA graph cannot): dropless layers run tokens
    /// through the experts they chose or pad to room for every token, instead of packing by loads read back.
    /// </summary>
    public bool SyncFree { get; init; }

    /// <summary>A 64-bit seed for one group of one layer (splitmix64 over the four numbers).</summary>
    public long GroupSeed(int layer, long group)
    {
        ulong h = Mix((ulong)Seed);
        h = Mix(h ^ (ulong)layer);
        h = Mix(h ^ (ulong)Step);
        h = Mix(h ^ (ulong)(FirstGroup + group));
        return (long)(h & 0x7FFF_FFFF_FFFF_FFFF);
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
