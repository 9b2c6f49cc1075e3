namespace Orleans.MoE.Kernels.Data;

/// <summary>SplitMix64 pseudo-random generator: tiny, and its sequence is fixed forever for a given seed.</summary>
/// <remarks>Used instead of System.Random because sampling must stay identical across .NET versions for resumes.</remarks>
internal struct SplitMix64(ulong seed)
{
    private ulong state = seed;

    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, bound) by rejection, so no value is favoured.</summary>
    public ulong NextBelow(ulong bound)
    {
        if (bound == 0) throw new ArgumentOutOfRangeException(nameof(bound), "bound must be positive");
        ulong limit = ulong.MaxValue - (ulong.MaxValue % bound);
        ulong value;
        do value = Next(); while (value >= limit);
        return value % bound;
    }
}
