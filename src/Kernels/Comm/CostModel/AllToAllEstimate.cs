namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>
/// An estimated all-to-all time and where it goes. <see cref="TotalSeconds"/> is the sum of the parts unless network
/// latency overlaps the transfers, when it is less.
/// </summary>
/// <param name="LatencySeconds">Per-call and per-message costs.</param>
/// <param name="TransferSeconds">Bytes over the links (NVLink and NIC traffic of one call overlap; calls add).</param>
/// <param name="TransformSeconds">The hierarchical version's two layout transforms; 0 for flat.</param>
public sealed record AllToAllEstimate(double TotalSeconds, double LatencySeconds, double TransferSeconds, double TransformSeconds);
