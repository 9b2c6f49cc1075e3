using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>What one MoE layer's forward reports: its routing table, whose losses and loads are computed when read.</summary>
public sealed record MoELayerReport(int Layer, RoutingTable Table);

/// <summary>Collects the reports of every MoE layer during one forward pass.</summary>
public sealed class MoEStatistics
{
    readonly List<MoELayerReport> reports = [];

    public IReadOnlyList<MoELayerReport> Reports => reports;

    public void Add(MoELayerReport report) => reports.Add(report);

    /// <summary>Σ over MoE layers of the aux loss (0 when the model has none).</summary>
    public Tensor TotalAuxLoss(Device device) =>
        reports.Count == 0 ? torch.zeros(1, device: device).squeeze() : torch.stack(reports.Select(r => r.Table.AuxLoss)).sum();

    public Tensor TotalZLoss(Device device) =>
        reports.Count == 0 ? torch.zeros(1, device: device).squeeze() : torch.stack(reports.Select(r => r.Table.ZLoss)).sum();
}
