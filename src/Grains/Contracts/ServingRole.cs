namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// A silo's part in one serving replica: the replica's silos in rank order (rank 0 leads: it batches the requests and
/// broadcasts each forward), this silo's rank, and the data plane that joins them ("none" for a one-silo replica,
/// "shared-memory" for silos of one process, "nccl" for GPU silos with rank 0's unique id).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ServingRole
{
    [Id(0)] public required IReadOnlyList<PlanMember> Members { get; init; }
    [Id(1)] public required int Rank { get; init; }
    [Id(2)] public string DataPlane { get; init; } = "none";
    [Id(3)] public byte[]? DataPlaneId { get; init; }

    /// <summary>Counts the replica's formations, so a re-formed replica never meets the ranks of an earlier one.</summary>
    [Id(4)] public long Formation { get; init; }

    public bool Leads => Rank == 0;

    /// <summary>The one-silo replica on <paramref name="member"/>.</summary>
    public static ServingRole Alone(PlanMember member) => new() { Members = [member], Rank = 0 };
}
