using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Grains.Planning;

/// <summary>
/// How many ranks a job can run on when silos come and go: the global batch is kept, so a world size must split it
/// into whole micro-batches of whole routing groups, and the parallel layout must accept it.
/// </summary>
public static class ElasticWorld
{
    /// <summary>The largest world size ≤ <paramref name="available"/> the job can use (0 when none is available).</summary>
    public static int Largest(JobConfig config, int available)
    {
        for (int world = available; world > 1; world--)
            if (Fits(config, world)) return world;
        return Math.Min(available, 1);
    }

    static bool Fits(JobConfig config, int world)
    {
        try
        {
            int micro = RankBatch.For(config.Training, world).MicroBatch;
            ParallelLayout.For(config.Parallel, world);
            int groupTokens = config.Moe.RoutingGroupTokens;
            return groupTokens == 0 || micro * config.Model.ContextLength % groupTokens == 0;
        }
        catch (ConfigException)
        {
            return false;
        }
    }
}
