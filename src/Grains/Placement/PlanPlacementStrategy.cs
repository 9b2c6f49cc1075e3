using Orleans.Placement;
using Orleans.Runtime;

namespace Orleans.MoE.Grains.Placement;

/// <summary>Places a grain on the silo its key names (<see cref="PlanKey"/>): the silo of the job's execution plan.</summary>
[GenerateSerializer, Immutable]
public sealed class PlanPlacementStrategy : PlacementStrategy
{
    internal static readonly PlanPlacementStrategy Singleton = new();
}

/// <summary>Marks a grain class as placed by the execution plan.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class PlanPlacementAttribute : PlacementAttribute
{
    public PlanPlacementAttribute() : base(PlanPlacementStrategy.Singleton)
    {
    }
}
