using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// A slice of one MoE layer's experts on one silo (key from <see cref="Placement.PlanKey"/>): their load
/// statistics and dropped tokens; the unit of expert migration once experts move between silos.
/// </summary>
public interface IExpertShardGrain : IGrainWithStringKey
{
    [OneWay]
    Task Record(long step, long[] load, long[] kept);

    [AlwaysInterleave]
    Task<ExpertShardState> GetState();
}
