namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a client asks the cluster to serve: a checkpoint under a model name, and how many replicas of it.</summary>
[GenerateSerializer, Immutable]
public sealed record DeploymentSpec
{
    /// <summary>The model name clients ask for (OpenAI's "model"); letters, digits, '.', '-' and '_'.</summary>
    [Id(0)] public required string Name { get; init; }

    /// <summary>Checkpoint folder on the silos' machines.</summary>
    [Id(1)] public required string Checkpoint { get; init; }

    /// <summary>Data-parallel replicas, each on <see cref="RanksPerReplica"/> silos.</summary>
    [Id(2)] public int Replicas { get; init; } = 1;

    /// <summary>Requests a replica decodes together (its KV-cache slots).</summary>
    [Id(3)] public int MaxBatch { get; init; } = 8;

    /// <summary>Requests a replica holds waiting for a slot; one more is answered "busy".</summary>
    [Id(4)] public int QueueLimit { get; init; } = 32;

    /// <summary>Device override ("cpu", "cuda"); null = the silo's device.</summary>
    [Id(5)] public string? Device { get; init; }

    /// <summary>
    /// Grow up to this many replicas as silos join (while no job waits for silos); 0 = stay at <see cref="Replicas"/>.
    /// Either way a lost replica is replaced when a silo is free.
    /// </summary>
    [Id(6)] public int MaxReplicas { get; init; }

    /// <summary>Tensor-slicing degree L of a replica: attention and dense MLPs split over L silos (the GPUs of a node).</summary>
    [Id(7)] public int TensorSlicing { get; init; } = 1;

    /// <summary>Expert-parallel degree G of a replica: its experts spread over G groups of L silos (expert slicing when G exceeds a layer's experts).</summary>
    [Id(8)] public int ExpertParallel { get; init; } = 1;

    /// <summary>
    /// Relay a replica's expert exchange through its nodes (intra-node, then inter-node, §5.3) when its expert-parallel
    /// groups span several nodes (silos report their node; every node must hold the same number of the replica's silos).
    /// </summary>
    [Id(9)] public bool HierarchicalAllToAll { get; init; }

    /// <summary>The replicas the deployment asks the cluster for.</summary>
    public int TargetReplicas => Math.Max(Replicas, MaxReplicas);

    /// <summary>Silos one replica spans (L × G).</summary>
    public int RanksPerReplica => TensorSlicing * ExpertParallel;

    /// <summary>Throws ArgumentException naming the field when a value is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Name) || !Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            throw new ArgumentException($"name: '{Name}' must be letters, digits, '.', '-' or '_'", nameof(Name));
        if (string.IsNullOrEmpty(Checkpoint)) throw new ArgumentException("checkpoint: a checkpoint folder is required", nameof(Checkpoint));
        if (Replicas < 1) throw new ArgumentException($"replicas: {Replicas} must be at least 1", nameof(Replicas));
        if (MaxBatch < 1) throw new ArgumentException($"max_batch: {MaxBatch} must be at least 1", nameof(MaxBatch));
        if (QueueLimit < 0) throw new ArgumentException($"queue_limit: {QueueLimit} must be ≥ 0", nameof(QueueLimit));
        if (TensorSlicing < 1) throw new ArgumentException($"tensor_slicing: {TensorSlicing} must be at least 1", nameof(TensorSlicing));
        if (ExpertParallel < 1) throw new ArgumentException($"expert_parallel: {ExpertParallel} must be at least 1", nameof(ExpertParallel));
        if (MaxReplicas != 0 && MaxReplicas < Replicas) throw new ArgumentException($"max_replicas: {MaxReplicas} is below replicas ({Replicas})", nameof(MaxReplicas));
    }
}
