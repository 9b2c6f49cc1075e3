namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// Experts First … First+Count−1 of a layer with Total experts. With expert slicing (serving on more ranks than
/// experts) Count is 1 and the rank holds slice <see cref="Slice"/> of <see cref="Slices"/> of that expert's hidden
/// dimension.
/// </summary>
public readonly record struct ExpertShard(int First, int Count, int Total, int Slice = 0, int Slices = 1)
{
    public static ExpertShard All(int experts) => new(0, experts, experts);

    public bool IsWhole => Count == Total && Slices == 1;
}
