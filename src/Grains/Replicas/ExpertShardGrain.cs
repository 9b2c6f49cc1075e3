using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Grains.Placement;
using Orleans.Placement;

namespace Orleans.MoE.Grains.Replicas;

/// <summary>
/// A contiguous range of one layer's experts on the silo that the plan gives them: accumulates their routed and
/// kept tokens. Key: job/generation/layer/first-last@silo (<see cref="PlanKey.ExpertShard"/>).
/// </summary>
[PlanPlacement]
[Immovable]
public sealed class ExpertShardGrain(SiloIdentity silo) : Grain, IExpertShardGrain
{
    long[] load = [];
    long[] kept = [];
    long lastStep;

    public Task Record(long step, long[] stepLoad, long[] stepKept)
    {
        // One-way and possibly re-delivered: a report for a step already counted is dropped.
        if (step <= lastStep) return Task.CompletedTask;
        if (load.Length != stepLoad.Length)
        {
            load = new long[stepLoad.Length];
            kept = new long[stepKept.Length];
        }
        for (int e = 0; e < load.Length; e++)
        {
            load[e] += stepLoad[e];
            kept[e] += stepKept[e];
        }
        lastStep = step;
        return Task.CompletedTask;
    }

    public Task<ExpertShardState> GetState()
    {
        var key = this.GetPrimaryKeyString();
        int layer = int.Parse(key.Split('/')[2].TrimStart('l'), System.Globalization.CultureInfo.InvariantCulture);
        int first = int.Parse(key.Split('/')[3].TrimStart('e').Split('-')[0], System.Globalization.CultureInfo.InvariantCulture);
        return Task.FromResult(new ExpertShardState(layer, first, load.ToArray(), kept.ToArray(), lastStep, silo.Name));
    }
}
