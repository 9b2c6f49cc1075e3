namespace Orleans.MoE.Kernels.Config;

/// <summary>Optimiser, schedule, batch and checkpoint settings of a training run.</summary>
public sealed record TrainingConfig
{
    public int Steps { get; init; } = 200;

    /// <summary>Sequences per optimiser step (the global batch).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Sequences per forward pass; the global batch is accumulated from micro-batches. 0 = the batch.</summary>
    public int MicroBatchSize { get; init; }

    public double LearningRate { get; init; } = 3e-3;
    public double MinLearningRate { get; init; } = 3e-4;
    public int WarmupSteps { get; init; } = 20;
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Epsilon { get; init; } = 1e-8;
    public double GradClip { get; init; } = 1.0;

    /// <summary>Evaluate on the validation split every this many steps (0 = only at the end).</summary>
    public int EvalInterval { get; init; }

    /// <summary>Tokens of the validation split scored per evaluation (0 = all of it).</summary>
    public int EvalTokens { get; init; } = 65536;

    /// <summary>Write a checkpoint every this many steps (0 = only at the end).</summary>
    public int CheckpointInterval { get; init; }

    /// <summary>"auto" (bf16 on CUDA, fp32 on CPU), "fp32" or "bf16".</summary>
    public string Precision { get; init; } = "auto";

    internal static readonly string[] Precisions = ["auto", "fp32", "bf16"];
}
