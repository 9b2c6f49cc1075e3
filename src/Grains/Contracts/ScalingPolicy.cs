namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// What a running job does when the cluster changes under it. Growing and shrinking keep the global batch (each
/// rank's share changes), so the losses are those of a run that never rescaled.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ScalingPolicy
{
    /// <summary>The default: the job keeps its ranks while silos join; a lost silo is replaced or the job shrinks.</summary>
    public static ScalingPolicy Fixed { get; } = new();

    [Id(0)] public GrowthPolicy OnJoin { get; init; } = GrowthPolicy.Fixed;

    /// <summary>With <see cref="GrowthPolicy.Grow"/>: the most ranks the job takes (0 = as many as there are silos).</summary>
    [Id(1)] public int MaxReplicas { get; init; }

    [Id(2)] public LossPolicy OnLoss { get; init; } = LossPolicy.Shrink;

    /// <summary>How a job that grows or is drained gives its state to the next generation's ranks.</summary>
    [Id(3)] public HandoffPolicy Handoff { get; init; } = HandoffPolicy.DataPlane;

    /// <summary>
    /// Parses "fixed" | "grow" | "grow:N", "shrink" | "wait" and "data-plane" | "checkpoint" (the console's --scaling,
    /// --on-loss and --handoff).
    /// </summary>
    public static ScalingPolicy Parse(string onJoin, string onLoss, string handoff = "data-plane")
    {
        var parts = onJoin.Split(':', 2);
        var growth = parts[0] switch
        {
            "fixed" => GrowthPolicy.Fixed,
            "grow" => GrowthPolicy.Grow,
            _ => throw new ArgumentException($"scaling '{onJoin}' is not fixed, grow or grow:N"),
        };
        int max = parts.Length == 2 && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n
            : parts.Length == 2 ? throw new ArgumentException($"scaling '{onJoin}': N must be a positive number") : 0;
        var loss = onLoss switch
        {
            "shrink" => LossPolicy.Shrink,
            "wait" => LossPolicy.Wait,
            _ => throw new ArgumentException($"on-loss '{onLoss}' is not shrink or wait"),
        };
        var transfer = handoff switch
        {
            "data-plane" => HandoffPolicy.DataPlane,
            "checkpoint" => HandoffPolicy.Checkpoint,
            _ => throw new ArgumentException($"handoff '{handoff}' is not data-plane or checkpoint"),
        };
        return new ScalingPolicy { OnJoin = growth, MaxReplicas = max, OnLoss = loss, Handoff = transfer };
    }
}

/// <summary>Whether a running job takes silos that join the cluster.</summary>
public enum GrowthPolicy
{
    /// <summary>Keep the ranks the job started with.</summary>
    Fixed,

    /// <summary>At the next chunk boundary, re-plan with the free silos (up to <see cref="ScalingPolicy.MaxReplicas"/>).</summary>
    Grow,
}

/// <summary>What a job does after it lost a silo and rolled back to its last good checkpoint.</summary>
public enum LossPolicy
{
    /// <summary>Re-plan on the survivors (and any free silo), with as many ranks as the batch allows.</summary>
    Shrink,

    /// <summary>Queue until the job has as many silos as before.</summary>
    Wait,
}

/// <summary>How the state of a job that grows or shrinks reaches the next generation's ranks.</summary>
public enum HandoffPolicy
{
    /// <summary>
    /// Over the data plane: the previous ranks keep their runs parked on their devices; when the job grows they send
    /// the joining ranks their experts and the dense weights, with the optimiser's moments, over the next data plane;
    /// when it shrinks the leaving ranks first send their experts to the staying ones over the current one. No
    /// checkpoint is written and the silos need no shared filesystem. Used when the next plan keeps every previous
    /// rank or only previous ranks, and no plan runs over MPI; otherwise the job hands off through a checkpoint.
    /// </summary>
    DataPlane,

    /// <summary>Every rank writes one checkpoint together and the next generation loads it (needs a shared filesystem).</summary>
    Checkpoint,
}
