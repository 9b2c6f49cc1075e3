namespace Orleans.MoE.Grains.Jobs;

/// <summary>
/// How many steps to ask a replica for at once: enough that a chunk takes about <see cref="TargetSeconds"/> on the
/// device, so the grain calls between chunks cost a small fraction of step time, and few enough that watchers see
/// progress and a cancel is heard promptly.
/// </summary>
public static class ChunkSizer
{
    public const double TargetSeconds = 1.0;
    public const int MaxSteps = 256;

    public static int Next(int requested, double meanStepSeconds, long stepsLeft)
    {
        int size = requested > 0 ? requested
            : meanStepSeconds <= 0 ? 1 // the first chunk measures the step time
            : (int)Math.Clamp(Math.Round(TargetSeconds / meanStepSeconds), 1, MaxSteps);
        return (int)Math.Max(1, Math.Min(size, stepsLeft));
    }
}
