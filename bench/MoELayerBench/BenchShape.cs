namespace Orleans.MoE.Bench;

/// <summary>One MoE layer shape: tokens, model width, expert hidden width, experts, top-k.</summary>
public sealed record BenchShape(string Name, int Tokens, int DModel, int DFf, int Experts, int TopK)
{
    /// <summary>The rows of ../shared/docs/TARGETS.md with the best peer's fwd+bwd ms and our target.</summary>
    public static readonly (BenchShape Shape, double BestPeerMs, double TargetMs)[] Targets =
    [
        (new("T16384-E16-k1", 16384, 2048, 8192, 16, 1), 7.96, 6.4),
        (new("T16384-E64-k1", 16384, 2048, 8192, 64, 1), 12.31, 9.8),
        (new("T16384-E16-k2", 16384, 2048, 8192, 16, 2), 13.92, 11.1),
        (new("T4096-E32-k1", 4096, 1024, 4096, 32, 1), 2.24, 0.75),
        (new("T512-E32-k1", 512, 1024, 4096, 32, 1), 1.96, 0.65),
        (new("T512-E8-k1", 512, 1024, 4096, 8, 1), 1.82, 0.6),
    ];

    /// <summary>Useful expert work of forward + backward: 3 passes × 2 GEMMs × 2·T·k·M·F.</summary>
    public double UsefulFlops => 3.0 * 2 * 2.0 * Tokens * TopK * DModel * DFf;

    /// <summary>A smaller copy for machines without a GPU (same experts and k, tokens and widths divided).</summary>
    public BenchShape Scaled(int divisor) => this with
    {
        Name = Name + $"/{divisor}",
        Tokens = Math.Max(Experts * 2, Tokens / divisor),
        DModel = Math.Max(64, DModel / divisor),
        DFf = Math.Max(128, DFf / divisor),
    };
}
