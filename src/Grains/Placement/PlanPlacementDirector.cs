using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Orleans.MoE.Grains.Placement;

/// <summary>
/// Puts a compute grain on the silo its plan key names, found by the silo's published <see cref="SiloMetadataKeys.Silo"/>.
/// When that silo is not in the cluster, placement fails loudly: the coordinator then re-plans, rather than the
/// grain quietly running on a silo that does not hold its device state.
/// </summary>
public sealed class PlanPlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        string key = target.GrainIdentity.Key.ToString() ?? "";
        string silo = PlanKey.SiloOf(key)
            ?? throw new OrleansException($"grain {target.GrainIdentity} has plan placement but its key names no silo (expected KEY@SILO)");
        foreach (var address in context.GetCompatibleSilos(target))
        {
            if (metadata.GetSiloMetadata(address).Metadata.TryGetValue(SiloMetadataKeys.Silo, out var name) && name == silo)
                return Task.FromResult(address);
        }
        throw new OrleansException($"the execution plan places {target.GrainIdentity} on silo '{silo}', which is not an active member of the cluster");
    }
}
