namespace Orleans.MoE.Grains.Contracts;

/// <summary>One phase of a job: its kind and the optimiser step at which it ends (Evaluate phases run no steps).</summary>
[GenerateSerializer, Immutable]
public sealed record JobPhase([property: Id(0)] PhaseKind Kind, [property: Id(1)] long UntilStep);
