using System.Globalization;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Bench;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Tests;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks one MoE layer (forward, forward+backward, decode) for the reference and the optimised path.
// Usage: MoELayerBench [--device auto|cpu|cuda] [--iterations 20] [--warmup 5] [--out bench/results] [--rows all|small]
//                     [--shape T16384-E16-k2]                               (one shape's rows only)
//        MoELayerBench --device cuda --check-kernels      (the fused routing kernels against TorchSharp's operations)
//        MoELayerBench --ranks N [--hierarchical --node-size 2] ...   (expert parallelism: one rank per GPU, or CPU threads)
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
string Get(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
var device = TorchRuntime.ResolveDevice(Get("device", "auto"));
bool gpu = device.type == DeviceType.CUDA;
var dtype = gpu ? ScalarType.BFloat16 : ScalarType.Float32;
int iterations = int.Parse(Get("iterations", "20"), CultureInfo.InvariantCulture);
int warmup = int.Parse(Get("warmup", "5"), CultureInfo.InvariantCulture);
string output = Get("out", Path.Combine("bench", "results"));
bool smallOnly = Get("rows", "all") == "small";
string? onlyShape = options.TryGetValue("shape", out var shapeName) ? shapeName : null;
if (onlyShape is not null && BenchShape.Targets.All(t => t.Shape.Name != onlyShape))
{
    Console.Error.WriteLine($"--shape: no shape named '{onlyShape}'; the shapes are {string.Join(", ", BenchShape.Targets.Select(t => t.Shape.Name))}");
    return 2;
}

if (options.TryGetValue("ranks", out var ranksText))
{
    // The expert-parallel layer across GPUs (or CPU ranks): --ranks N [--hierarchical --node-size 2].
    int ranks = int.Parse(ranksText, CultureInfo.InvariantCulture);
    return ExpertParallelRun.Run(ranks, gpu, options.ContainsKey("hierarchical"), int.Parse(Get("node-size", "2"), CultureInfo.InvariantCulture), warmup, iterations, output);
}
double matmul = Timing.MatmulTflops(device, dtype);
if (options.ContainsKey("probe-backward"))
{
    // The fixed cost of one backward call, to compare with bench/python/backward_overhead.py.
    var probe = torch.randn(512, 1024, device: device).to_type(dtype).requires_grad_();
    double backwardMs = Timing.MedianMs(device, 20, 200, () => { using var s = torch.NewDisposeScope(); (probe * 2).sum().backward(); }, () => probe.grad = null!);
    double forwardMs;
    using (torch.no_grad())
        forwardMs = Timing.MedianMs(device, 20, 200, () => { using var s = torch.NewDisposeScope(); (probe * 2).sum(); });
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"torchsharp: (x*2).sum().backward() on [512,1024]: median {backwardMs:F3} ms; forward only {forwardMs:F3} ms"));
    return 0;
}
if (options.ContainsKey("check-kernels"))
    return CheckKernels(device) ? 0 : 1;
if (options.TryGetValue("profile", out var profiled))
{
    // For a kernel profiler (ncu --graph-profiling node): the graphed layer of one shape with the bf16 router (the
    // headline variant), capacity then dropless, two forward+backward replays each after capture; the profiler's last
    // kernels are the replays'. Gradients are dropped before each step as in the timed loop: kept, each backward would
    // add into them (at E16 k1 four eager adds, 0.78 ms, that the timed layer never runs).
    var (target, _, _) = BenchShape.Targets.Single(t => t.Shape.Name == profiled);
    var shape = gpu ? target : target.Scaled(8);
    foreach (bool dropTokens in new[] { true, false })
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        var layer = BenchLayers.Build(shape, dropTokens, device, dtype, routerInComputeDtype: true);
        using var graphed = new GraphedLayer(layer, dropTokens ? "capacity 1.25" : "dropless", [shape.Tokens, shape.DModel], dtype, device);
        var x = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype).requires_grad_();
        var gradient = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype);
        for (int i = 0; i < 3; i++)
        {
            layer.zero_grad(set_to_none: true);
            x.grad = null!;
            using var step = torch.NewDisposeScope();
            var r = graphed.Forward(x);
            torch.autograd.backward([r.Output, r.AuxLoss], [gradient, torch.full([], 0.01, device: device)]);
            Timing.Synchronize(device);
        }
        Console.WriteLine($"profiled {shape.Name} {graphed.Mode}: kernels forward + backward {graphed.Operations}");
    }
    return 0;
}
if (options.ContainsKey("breakdown"))
{
    foreach (var (target, _, _) in BenchShape.Targets)
    {
        var shape = gpu ? target : target.Scaled(8);
        torch.manual_seed(1);
        StageBreakdown.Run(Build(shape, dropTokens: true), shape, device, dtype, warmup, iterations);
    }
    return 0;
}
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"device {device}, {dtype}, matmul {matmul:F0} TFLOP/s"));
if (gpu)
{
    using var probe = torch.empty(1, device: device).to_type(dtype);
    Console.WriteLine(CudaGraphLibrary.Available
        ? $"CUDA helper loaded; grouped GEMM row alignment {GroupedExpertGemm.RowAlignment(probe)} (0: unavailable)"
        : $"CUDA helper unavailable: {CudaGraphLibrary.Problem}");
    // The fused routing kernels are checked against TorchSharp's operations before anything is timed.
    if (RoutingKernels.Problem(device) is { } routingProblem) Console.WriteLine($"routing kernels unavailable: {routingProblem}");
    else if (!CheckKernels(device)) return 1;
}
var rows = new List<Dictionary<string, object>>();
var markdown = new StringBuilder();
markdown.AppendLine("| shape | variant | mode | fwd ms | fwd+bwd ms | useful TFLOP/s | of matmul | best peer ms | ratio vs peer | target ms | vs reference | max rel. error | kernels fwd + bwd |");
markdown.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");

foreach (var (target, peerMs, targetMs) in BenchShape.Targets)
{
    var shape = gpu ? target : target.Scaled(8);
    if ((smallOnly && shape.Tokens > 4096) || (onlyShape is not null && target.Name != onlyShape)) continue;
    using var scope = torch.NewDisposeScope();
    torch.manual_seed(1);
    var capacityLayer = Build(shape, dropTokens: true);
    // The same weights under other settings: dropless, and both with the router's GEMM in bf16.
    MoELayer Like(bool dropTokens, bool routerInComputeDtype)
    {
        var layer = BenchLayers.Build(shape, dropTokens, device, dtype, routerInComputeDtype: routerInComputeDtype);
        using var noGrad = torch.no_grad();
        layer.Router.Weight.copy_(capacityLayer.Router.Weight);
        layer.Experts.W1.copy_(capacityLayer.Experts.W1);
        layer.Experts.W2.copy_(capacityLayer.Experts.W2);
        return layer;
    }
    var droplessLayer = Like(dropTokens: false, routerInComputeDtype: false);
    var capacityBf16Router = Like(dropTokens: true, routerInComputeDtype: true);
    var droplessBf16Router = Like(dropTokens: false, routerInComputeDtype: true);
    long[] inputShape = [shape.Tokens, shape.DModel];
    // Made one at a time and dropped after their turn (with their gradients): a large shape's graphs hold GiBs.
    (Func<IBenchLayer> Make, MoELayer Owner)[] variants =
    [
        (() => new ReferenceLayer(capacityLayer, 1.25, 4), capacityLayer),
        (() => new OptimisedLayer(capacityLayer, "capacity 1.25"), capacityLayer),
        (() => new OptimisedLayer(droplessLayer, "dropless"), droplessLayer),
        (() => new GraphedLayer(capacityLayer, "capacity 1.25", inputShape, dtype, device), capacityLayer),
        (() => new GraphedLayer(droplessLayer, "dropless", inputShape, dtype, device), droplessLayer),
        (() => new GraphedLayer(capacityBf16Router, "capacity 1.25, bf16 router", inputShape, dtype, device), capacityBf16Router),
        (() => new GraphedLayer(capacityBf16Router, "capacity 1.25, bf16 router, torch.bmm experts", inputShape, dtype, device, tunedGemm: false), capacityBf16Router),
        (() => new GraphedLayer(capacityBf16Router, "capacity 1.25, bf16 router, no swapped GEMM", inputShape, dtype, device, swappedGemm: false), capacityBf16Router),
        (() => new GraphedLayer(droplessBf16Router, "dropless, bf16 router", inputShape, dtype, device), droplessBf16Router),
        (() => new GraphedLayer(droplessBf16Router, "dropless, bf16 router, Hopper grouped GEMM", inputShape, dtype, device, hopperGemm: true), droplessBf16Router),
        (() => new GraphedLayer(capacityBf16Router, "capacity 1.25, bf16 router, TorchSharp routing", inputShape, dtype, device, fusedRouting: false), capacityBf16Router),
        (() => new GraphedLayer(droplessBf16Router, "dropless, bf16 router, TorchSharp routing", inputShape, dtype, device, fusedRouting: false), droplessBf16Router),
    ];
    double referenceMs = double.NaN;
    foreach (var (make, owner) in variants)
    {
        var variant = make();
        var errors = Float64Check.Run(variant, owner, shape, device, dtype, seed: 100 + rows.Count);
        double bound = gpu ? 2e-2 : 1e-4;
        string verdict = errors.Max <= bound ? "ok" : "FAILED";
        var inputs = Enumerable.Range(0, 3).Select(i => torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype).requires_grad_()).ToArray();
        var gradient = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype);
        int turn = 0;
        double forwardMs;
        using (torch.no_grad())
            forwardMs = Timing.MedianMs(device, warmup, iterations, () => { using var s = torch.NewDisposeScope(); variant.Forward(inputs[turn++ % 3]); });
        var auxGradient = torch.full([], 0.01, device: device);
        // Gradients are dropped before each iteration (set to none, untimed), so every backward writes them
        // fresh as a training step after zero_grad(set_to_none) does, for every variant alike.
        double trainMs = Timing.MedianMs(device, warmup, iterations, () =>
        {
            using var s = torch.NewDisposeScope();
            var r = variant.Forward(inputs[turn % 3]);
            torch.autograd.backward([r.Output, r.AuxLoss], [gradient, auxGradient]);
        }, prepare: () =>
        {
            turn++;
            owner.zero_grad(set_to_none: true);
            foreach (var input in inputs) input.grad = null!;
        });
        if (variant.Name == "reference") referenceMs = trainMs;
        double useful = shape.UsefulFlops / (trainMs / 1000) / 1e12;
        var row = new Dictionary<string, object>
        {
            ["shape"] = shape.Name,
            ["tokens"] = shape.Tokens,
            ["d_model"] = shape.DModel,
            ["d_ff"] = shape.DFf,
            ["experts"] = shape.Experts,
            ["top_k"] = shape.TopK,
            ["variant"] = variant.Name,
            ["mode"] = variant.Mode,
            ["forward_ms"] = forwardMs,
            ["forward_backward_ms"] = trainMs,
            ["useful_tflops"] = useful,
            ["matmul_tflops"] = matmul,
            ["best_peer_ms"] = gpu ? peerMs : double.NaN,
            ["target_ms"] = gpu ? targetMs : double.NaN,
            ["speedup_vs_reference"] = referenceMs / trainMs,
            ["rel_error_output"] = errors.Output,
            ["rel_error_grad_x"] = errors.GradX,
            ["rel_error_grad_w1"] = errors.GradW1,
            ["rel_error_grad_router"] = errors.GradRouter,
            ["check"] = verdict,
        };
        string kernels = "-";
        if (variant is GraphedLayer { Operations: { } operations })
        {
            row["forward_kernels"] = operations.Forward.Kernels;
            row["forward_other_operations"] = operations.Forward.Others;
            row["backward_kernels"] = operations.Backward.Kernels;
            row["backward_other_operations"] = operations.Backward.Others;
            kernels = $"{operations.Forward.Kernels} + {operations.Backward.Kernels}";
        }
        rows.Add(row);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"| {shape.Name} | {variant.Name} | {variant.Mode} | {forwardMs:F3} | {trainMs:F3} | {useful:F0} | {useful / matmul:P0} | {(gpu ? peerMs.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {(gpu ? (peerMs / trainMs).ToString("F2", CultureInfo.InvariantCulture) + "×" : "-")} | {(gpu ? targetMs.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {referenceMs / trainMs:F2}× | {errors.Max:E1} {verdict} | {kernels} |");
        markdown.AppendLine(line);
        Console.WriteLine(line);
        (variant as IDisposable)?.Dispose();
        owner.zero_grad(set_to_none: true);
    }
}

// Decode: forward only, few tokens, where launches dominate.
markdown.AppendLine();
markdown.AppendLine("| decode tokens | reference fwd ms | moe-layer fwd ms | moe-layer graphs fwd ms | speedup (eager) | speedup (graphs) | kernels |");
markdown.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
foreach (int tokens in new[] { 1, 2, 4, 8, 16, 32, 64 })
{
    var shape = new BenchShape($"decode-T{tokens}", tokens, gpu ? 1024 : 256, gpu ? 4096 : 1024, 32, 1);
    using var scope = torch.NewDisposeScope();
    torch.manual_seed(2);
    var layer = Build(shape, dropTokens: true);
    layer.eval();
    var x = torch.randn(tokens, shape.DModel, device: device).to_type(dtype);
    var reference = new ReferenceLayer(layer, 1.25, 4);
    var optimised = new OptimisedLayer(layer, "capacity 1.25");
    using var graphed = new GraphedLayer(layer, "capacity 1.25", [tokens, shape.DModel], dtype, device);
    double refMs, optMs, graphMs;
    using (torch.no_grad())
    {
        refMs = Timing.MedianMs(device, warmup, iterations * 5, () => { using var s = torch.NewDisposeScope(); reference.Forward(x); });
        optMs = Timing.MedianMs(device, warmup, iterations * 5, () => { using var s = torch.NewDisposeScope(); optimised.Forward(x); });
        graphMs = Timing.MedianMs(device, warmup, iterations * 5, () => { using var s = torch.NewDisposeScope(); graphed.Forward(x); });
    }
    long forwardKernels = graphed.Operations?.Forward.Kernels ?? -1;
    rows.Add(new Dictionary<string, object> { ["shape"] = shape.Name, ["tokens"] = tokens, ["reference_forward_ms"] = refMs, ["moe_layer_forward_ms"] = optMs, ["moe_layer_graphs_forward_ms"] = graphMs, ["forward_kernels"] = forwardKernels });
    string line = string.Create(CultureInfo.InvariantCulture, $"| {tokens} | {refMs:F3} | {optMs:F3} | {graphMs:F3} | {refMs / optMs:F2}× | {refMs / graphMs:F2}× | {(forwardKernels < 0 ? "-" : forwardKernels.ToString(CultureInfo.InvariantCulture))} |");
    markdown.AppendLine(line);
    Console.WriteLine(line);
}

Directory.CreateDirectory(output);
string stem = Path.Combine(output, $"moe-layer-{(gpu ? "h200" : "cpu")}");
File.WriteAllText(stem + ".json", JsonSerializer.Serialize(new { device = device.ToString(), dtype = dtype.ToString(), matmul_tflops = matmul, iterations, warmup, rows }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
File.WriteAllText(stem + ".md", markdown.ToString());
Console.WriteLine($"wrote {stem}.json and {stem}.md");
return rows.Any(r => r.TryGetValue("check", out var c) && (string)c != "ok") ? 1 : 0;

MoELayer Build(BenchShape shape, bool dropTokens) => BenchLayers.Build(shape, dropTokens, device, dtype);

// The fused kernels against TorchSharp's operations (tests/Shared/RoutingKernelCheck.cs) and the tuned expert GEMM
// against float64 (tests/Shared/ExpertGemmCheck.cs): a line per case that is not plainly equal, then the summaries;
// false when any differs.
static bool CheckKernels(Device device)
{
    if (RoutingKernels.Problem(device) is { } problem)
    {
        Console.WriteLine($"routing kernels unavailable on {device}: {problem}");
        return false;
    }
    var report = RoutingKernelCheck.Run(device);
    foreach (string tied in report.TiedOrder) Console.WriteLine($"routing kernels rank tied experts in another order: {tied}");
    foreach (string difference in report.Differences) Console.WriteLine($"routing kernels differ: {difference}");
    Console.WriteLine(report.Summary);
    if (!CudaGraphLibrary.Available)
    {
        Console.WriteLine($"tuned expert GEMM unavailable: {CudaGraphLibrary.Problem}");
        return false;
    }
    var (cases, differences) = ExpertGemmCheck.Run(device);
    foreach (string difference in differences) Console.WriteLine($"tuned expert GEMM differs: {difference}");
    Console.WriteLine($"tuned expert GEMM against float64 bmm: {cases - differences.Count} of {cases} cases within 1e-2, {differences.Count} differ");
    if (HopperExpertGemm.Problem(device) is { } hopperProblem)
    {
        Console.WriteLine($"Hopper expert GEMM unavailable: {hopperProblem}");
        return report.Differences.Count == 0 && differences.Count == 0;
    }
    var (hopperCases, hopperDifferences, hopperReport) = HopperExpertGemmCheck.Run(device);
    foreach (string line in hopperReport) Console.WriteLine($"Hopper expert MLP against libtorch's: {line}");
    foreach (string difference in hopperDifferences) Console.WriteLine($"Hopper expert MLP differs: {difference}");
    Console.WriteLine($"Hopper expert MLP against libtorch's GEMMs and GELU: {hopperCases - hopperDifferences.Count} of {hopperCases} cases within 1e-2, {hopperDifferences.Count} differ");
    return report.Differences.Count == 0 && differences.Count == 0 && hopperDifferences.Count == 0;
}
