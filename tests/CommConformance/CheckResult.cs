namespace Orleans.MoE.CommConformance;

/// <summary>One check on one rank: null <see cref="Error"/> means it passed.</summary>
public sealed record CheckResult(string Name, int Rank, string? Error, double Milliseconds)
{
    public bool Passed => Error is null;
}
