namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>One measured all-to-all: <paramref name="Gpus"/> ranks on one node, each sending <paramref name="BytesPerRank"/> in total.</summary>
public sealed record CalibrationPoint(int Gpus, double BytesPerRank, double Seconds);
