namespace Orleans.MoE.Kernels.Comm;

/// <summary>Experts First … First+Count−1 of a layer with Total experts.</summary>
public readonly record struct ExpertShard(int First, int Count, int Total)
{
    public static ExpertShard All(int experts) => new(0, experts, experts);

    public bool IsWhole => Count == Total;
}
