namespace Orleans.MoE.Grains.Contracts;

/// <summary>A job's view of the cluster when it re-plans: live silos, its silos being drained, free assignable silos.</summary>
[GenerateSerializer, Immutable]
public sealed record JobSiloView(
    [property: Id(0)] IReadOnlyList<string> Alive, [property: Id(1)] IReadOnlyList<string> Draining, [property: Id(2)] int Free);
