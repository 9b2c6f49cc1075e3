using System.Diagnostics;
using Orleans.MoE.Kernels.Comm.Nccl;

namespace Orleans.MoE.Bench.Comm;

/// <summary>
/// Times one collective on every rank of an in-process NCCL group (one thread per GPU). A sample starts when all
/// threads leave a barrier and ends when this rank's GPU has finished; the sample's time is the slowest rank's. Also
/// times a run of back-to-back calls, which hides the host's start and wait costs the way nccl-tests does.
/// </summary>
public static class CollectiveTiming
{
    public const int BackToBack = 20;

    /// <summary>This rank's sample times and its back-to-back mean, in microseconds.</summary>
    public sealed record RankTimes(double[] Samples, double BackToBackMean);

    public static RankTimes Measure(NcclCommunicator comm, Barrier start, int warmup, int iterations, Action operation)
    {
        var wait = TimeSpan.FromSeconds(60);
        for (int i = 0; i < warmup; i++) operation();
        comm.Synchronize(wait);
        var samples = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            start.SignalAndWait();
            long began = Stopwatch.GetTimestamp();
            operation();
            comm.Synchronize(wait);
            samples[i] = Stopwatch.GetElapsedTime(began).TotalMicroseconds;
        }
        start.SignalAndWait();
        long run = Stopwatch.GetTimestamp();
        for (int i = 0; i < BackToBack; i++) operation();
        comm.Synchronize(wait);
        return new RankTimes(samples, Stopwatch.GetElapsedTime(run).TotalMicroseconds / BackToBack);
    }

    /// <summary>Median over samples of the slowest rank's time, and the slowest rank's back-to-back mean.</summary>
    public static (double MedianMicroseconds, double BackToBackMicroseconds) Combine(IReadOnlyList<RankTimes> ranks)
    {
        var slowest = Enumerable.Range(0, ranks[0].Samples.Length).Select(i => ranks.Max(r => r.Samples[i])).Order().ToArray();
        return (slowest[slowest.Length / 2], ranks.Max(r => r.BackToBackMean));
    }
}
