using System.Globalization;
using Orleans.MoE.Kernels.Comm.CostModel;
using Spectre.Console;

namespace Orleans.MoE.Client.Display;

/// <summary>What <c>moe simulate-a2a</c> prints: the calibration fit, the assumptions, the table and the crossovers.</summary>
internal static class AllToAllSimulationReport
{
    public static object Json(Calibration calibration, IntraNodeFit fit, AllToAllCostParameters parameters,
        IReadOnlyList<AllToAllComparison> rows, IReadOnlyList<(int Gpus, double? Below)> crossovers) => new
        {
            calibration = new
            {
                source = calibration.Source,
                call_overhead_us = fit.Link.CallOverheadSeconds * 1e6,
                per_peer_us = fit.Link.PerPeerSeconds * 1e6,
                bus_bandwidth_gbs = fit.Link.BusBandwidthBytesPerSecond / 1e9,
                residuals = fit.Residuals.Select(r => new
                {
                    gpus = r.Point.Gpus,
                    bytes_per_rank = r.Point.BytesPerRank,
                    measured_us = r.Point.Seconds * 1e6,
                    model_us = r.ModelSeconds * 1e6,
                    relative_error = r.RelativeError,
                }),
            },
            assumptions = new
            {
                inter_latency_us = parameters.Inter.MessageLatencySeconds * 1e6,
                nic_gbs_per_gpu = parameters.Inter.BandwidthBytesPerSecond / 1e9,
                message_overhead_us = parameters.MessageOverheadSeconds * 1e6,
                memory_gbs = parameters.MemoryBandwidthBytesPerSecond / 1e9,
                transform_launch_us = parameters.TransformLaunchSeconds * 1e6,
                overlap_network_latency = parameters.OverlapNetworkLatency,
            },
            rows = rows.Select(r => new
            {
                gpus = r.Gpus,
                nodes = r.Nodes,
                bytes_per_rank = r.BytesPerRank,
                flat_us = r.Flat.TotalSeconds * 1e6,
                hierarchical_us = r.Hierarchical.TotalSeconds * 1e6,
                speedup = r.Speedup,
                faster = r.HierarchicalFaster ? "hierarchical" : "flat",
                flat = Parts(r.Flat),
                hierarchical = Parts(r.Hierarchical),
            }),
            crossovers = crossovers.Select(c => new { gpus = c.Gpus, hierarchical_faster_below_bytes = c.Below }),
        };

    static object Parts(AllToAllEstimate e) => new
    {
        latency_us = e.LatencySeconds * 1e6,
        transfer_us = e.TransferSeconds * 1e6,
        transform_us = e.TransformSeconds * 1e6,
    };

    public static void Write(Calibration calibration, IntraNodeFit fit, AllToAllCostParameters parameters,
        IReadOnlyList<AllToAllComparison> rows, IReadOnlyList<(int Gpus, double? Below)> crossovers)
    {
        var link = fit.Link;
        Console.WriteLine(Invariant($"Intra-node fit ({calibration.Source}):"));
        Console.WriteLine(Invariant($"  T(n, S) = {link.CallOverheadSeconds * 1e6:F1} µs + (n−1)·{link.PerPeerSeconds * 1e6:F2} µs + S·(n−1)/n / {link.BusBandwidthBytesPerSecond / 1e9:F0} GB/s"));
        var residuals = new Table().AddColumns("GPUs", "bytes/rank", "measured µs", "model µs", "error");
        foreach (var r in fit.Residuals)
            residuals.AddRow(Invariant($"{r.Point.Gpus}"), ByteSize.Format(r.Point.BytesPerRank), Invariant($"{r.Point.Seconds * 1e6:F1}"),
                Invariant($"{r.ModelSeconds * 1e6:F1}"), Invariant($"{r.RelativeError * 100:+0.0;-0.0}%"));
        AnsiConsole.Write(residuals);
        Console.WriteLine(Invariant($"Network: {parameters.Inter.MessageLatencySeconds * 1e6:F1} µs + {parameters.MessageOverheadSeconds * 1e6:F2} µs software per message, {parameters.Inter.BandwidthBytesPerSecond / 1e9:F0} GB/s per GPU; per-message costs {(parameters.OverlapNetworkLatency ? "overlap the transfers (lower bound)" : "add to the transfers (upper bound)")}."));
        Console.WriteLine(Invariant($"Layout transforms: {parameters.TransformLaunchSeconds * 1e6:F1} µs + 2·S / {parameters.MemoryBandwidthBytesPerSecond / 1e9:F0} GB/s each, two per hierarchical all-to-all."));

        var table = new Table().AddColumns("GPUs", "nodes", "bytes/rank", "flat µs", "hier. µs", "speed-up", "faster");
        foreach (var r in rows)
            table.AddRow(Invariant($"{r.Gpus}"), Invariant($"{r.Nodes}"), ByteSize.Format(r.BytesPerRank), Invariant($"{r.Flat.TotalSeconds * 1e6:F1}"),
                Invariant($"{r.Hierarchical.TotalSeconds * 1e6:F1}"), Invariant($"{r.Speedup:F2}×"), r.HierarchicalFaster ? "hierarchical" : "flat");
        AnsiConsole.Write(table);

        Console.WriteLine("Crossover (hierarchical faster below this many bytes per rank):");
        Console.WriteLine("  " + string.Join(", ", crossovers.Select(c => Invariant($"{c.Gpus} GPUs: {Crossover(c.Below)}"))));
        foreach (double size in rows.Select(r => r.BytesPerRank).Distinct())
        {
            var first = rows.FirstOrDefault(r => r.BytesPerRank == size && r.HierarchicalFaster);
            Console.WriteLine(first is null
                ? $"  {ByteSize.Format(size)}: flat is faster at every cluster size in the table"
                : Invariant($"  {ByteSize.Format(size)}: hierarchical is faster from {first.Gpus} GPUs ({first.Nodes} nodes)"));
        }
    }

    static string Crossover(double? below) => below switch
    {
        null => "never",
        >= AllToAllCrossover.MaxBytes => "always (up to 1 TB)",
        { } b => ByteSize.Format(b),
    };

    static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
