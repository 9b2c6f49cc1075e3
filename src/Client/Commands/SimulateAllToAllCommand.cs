using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Comm.CostModel;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe simulate-a2a</c>: the cost model's flat and hierarchical all-to-all times from one node up to
/// --max-gpus, with the intra-node link fitted to measurements and the network as stated assumptions.
/// </summary>
internal static class SimulateAllToAllCommand
{
    // Per-rank volumes from this project's shapes, bf16: decode of 8 tokens at width 1024 (16 KB) and of 128
    // tokens (256 KB); a 2,048-token prefill at width 1024 (4 MB); the MoE-layer benchmark's training shape,
    // 16,384 tokens at width 2048 (64 MB); and a wide model's training step (256 MB).
    static readonly string[] DefaultSizes = ["16KB", "256KB", "4MB", "64MB", "256MB"];

    public static Command Create()
    {
        var gpusPerNode = new Option<int>("--gpus-per-node") { Description = "GPUs per node (NVLink domain)", DefaultValueFactory = _ => 8 };
        var maxGpus = new Option<int>("--max-gpus") { Description = "Largest cluster: one node, then doubling up to this", DefaultValueFactory = _ => 1024 };
        var sizes = new Option<string[]>("--bytes-per-rank")
        {
            Description = "All-to-all bytes each rank sends in total (repeatable; KB/MB/GB are binary)",
            DefaultValueFactory = _ => DefaultSizes,
            AllowMultipleArgumentsPerToken = true,
        };
        var calibration = new Option<string?>("--calibration") { Description = "JSON of measured single-node all-to-alls (docs/a2a-cost-model.md); default: one H200 node" };
        var interLatency = new Option<double>("--inter-latency-us") { Description = "Network latency per message, µs (InfiniBand NDR: 2–5)", DefaultValueFactory = _ => 3 };
        var nicGbps = new Option<double>("--nic-gbps") { Description = "Network bandwidth per GPU, Gb/s (one 400 Gb/s NIC per GPU; 4 NICs for 8 GPUs: 200)", DefaultValueFactory = _ => 400 };
        var messageOverhead = new Option<double?>("--message-overhead-us") { Description = "Software cost per network message, µs (default: the calibrated per-peer cost)" };
        var memoryGbs = new Option<double>("--memory-gbs") { Description = "HBM traffic of a layout transform, GB/s (H200 peak 4,800)", DefaultValueFactory = _ => 2500 };
        var transformLaunch = new Option<double>("--transform-launch-us") { Description = "Fixed cost of one layout transform, µs", DefaultValueFactory = _ => 5 };
        var overlap = new Option<bool>("--overlap-latency") { Description = "Let network message costs hide behind transfers (lower bound) instead of adding (upper bound)" };
        var json = CommonOptions.Json();
        var command = new Command("simulate-a2a", "Cost model of flat vs hierarchical all-to-all up to --max-gpus")
        {
            gpusPerNode, maxGpus, sizes, calibration, interLatency, nicGbps, messageOverhead, memoryGbs, transformLaunch, overlap, json,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(json), () =>
        {
            var measured = parse.GetValue(calibration) is { } file ? CalibrationFile.Load(file) : Calibration.H200NvLink;
            var fit = IntraNodeFit.Fit(measured);
            var parameters = new AllToAllCostParameters(
                fit.Link,
                new InterNodeLink(Positive(parse.GetValue(interLatency), "--inter-latency-us") * 1e-6, Positive(parse.GetValue(nicGbps), "--nic-gbps") * 1e9 / 8),
                (parse.GetValue(messageOverhead) * 1e-6) ?? fit.Link.PerPeerSeconds,
                Positive(parse.GetValue(memoryGbs), "--memory-gbs") * 1e9,
                parse.GetValue(transformLaunch) * 1e-6,
                parse.GetValue(overlap));
            var model = new AllToAllCostModel(parameters);
            var bytes = parse.GetValue(sizes)!.Select(ByteSize.Parse).ToList();
            int perNode = parse.GetValue(gpusPerNode);
            var rows = AllToAllComparison.Sweep(model, perNode, parse.GetValue(maxGpus), bytes);
            if (rows.Count == 0) throw new ArgumentException($"--max-gpus is below one node of {perNode} GPUs");
            var crossovers = rows.Select(r => r.Gpus).Distinct()
                .Select(g => (Gpus: g, Below: AllToAllCrossover.HierarchicalFasterBelow(model, new ClusterShape(g, perNode)))).ToList();
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(AllToAllSimulationReport.Json(measured, fit, parameters, rows, crossovers), JsonOutput.Options));
            else
                AllToAllSimulationReport.Write(measured, fit, parameters, rows, crossovers);
            return 0;
        }));
        return command;
    }

    static double Positive(double value, string option) =>
        value > 0 ? value : throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{option} must be positive, not {value}"));
}
