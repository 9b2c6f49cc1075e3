namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>The checkpoints found under a folder: verified ones by ascending step, and those skipped with why.</summary>
public sealed record CheckpointScan(IReadOnlyList<CheckpointDirectory> Valid, IReadOnlyList<SkippedCheckpoint> Skipped);
