namespace Orleans.MoE.Kernels.Data;

/// <summary>Where a <see cref="BatchSampler"/> is: the epoch and the index of the next batch within it.</summary>
/// <remarks>Saved with a checkpoint so a resumed run draws exactly the batches the uninterrupted run would have.</remarks>
public readonly record struct SamplerPosition(long Epoch, long Index)
{
    /// <summary>The first batch of the first epoch.</summary>
    public static SamplerPosition Start => new(0, 0);
}
