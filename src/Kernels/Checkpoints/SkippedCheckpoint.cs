namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>A checkpoint directory that failed verification, and the reason.</summary>
public sealed record SkippedCheckpoint(string Path, string Reason);
