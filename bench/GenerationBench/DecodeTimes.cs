namespace Orleans.MoE.Bench;

/// <summary>One round's engine steps summarised: the prefill (first step), per-token p50/p99 (later steps), tokens/s.</summary>
internal sealed record DecodeTimes(int Batch, double Prefill, double P50, double P99, double TokensPerSecond)
{
    public static DecodeTimes From(IReadOnlyList<double> steps, int batch, int generate)
    {
        var decode = steps.Skip(1).Order().ToArray();
        return new DecodeTimes(batch, steps[0], decode[decode.Length / 2],
            decode[Math.Min(decode.Length - 1, (int)Math.Ceiling(decode.Length * 0.99) - 1)], batch * generate / (steps.Sum() / 1000));
    }
}
