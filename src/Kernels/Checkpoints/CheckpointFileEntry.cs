namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>A checkpoint manifest's record of one file: its size in bytes and lowercase hex SHA-256.</summary>
public sealed record CheckpointFileEntry(long Size, string Sha256);
