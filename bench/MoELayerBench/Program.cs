using System.Globalization;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Bench;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks one MoE layer (forward, forward+backward, decode) for the reference and the optimised path.
// Usage: MoELayerBench [--device auto|cpu|cuda] [--iterations 20] [--warmup 5] [--out bench/results] [--rows all|small]
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
var rows = new List<Dictionary<string, object>>();
var markdown = new StringBuilder();
markdown.AppendLine("| shape | variant | mode | fwd ms | fwd+bwd ms | useful TFLOP/s | of matmul | best peer ms | ratio vs peer | target ms | vs reference | max rel. error |");
markdown.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");

foreach (var (target, peerMs, targetMs) in BenchShape.Targets)
{
    var shape = gpu ? target : target.Scaled(8);
    if (smallOnly && shape.Tokens > 4096) continue;
    using var scope = torch.NewDisposeScope();
    torch.manual_seed(1);
    var capacityLayer = Build(shape, dropTokens: true);
    var droplessLayer = Build(shape, dropTokens: false);
    using (torch.no_grad())
    {
        droplessLayer.Router.Weight.copy_(capacityLayer.Router.Weight);
        droplessLayer.Experts.W1.copy_(capacityLayer.Experts.W1);
        droplessLayer.Experts.W2.copy_(capacityLayer.Experts.W2);
    }
    IBenchLayer[] variants =
    [
        new ReferenceLayer(capacityLayer, 1.25, 4),
        new OptimisedLayer(capacityLayer, "capacity 1.25"),
        new OptimisedLayer(droplessLayer, "dropless"),
    ];
    double referenceMs = double.NaN;
    foreach (var variant in variants)
    {
        var owner = variant.Mode == "dropless" ? droplessLayer : capacityLayer;
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
        rows.Add(row);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"| {shape.Name} | {variant.Name} | {variant.Mode} | {forwardMs:F3} | {trainMs:F3} | {useful:F0} | {useful / matmul:P0} | {(gpu ? peerMs.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {(gpu ? (peerMs / trainMs).ToString("F2", CultureInfo.InvariantCulture) + "×" : "-")} | {(gpu ? targetMs.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {referenceMs / trainMs:F2}× | {errors.Max:E1} {verdict} |");
        markdown.AppendLine(line);
        Console.WriteLine(line);
    }
}

// Decode: forward only, few tokens, where launches dominate.
markdown.AppendLine();
markdown.AppendLine("| decode tokens | reference fwd ms | moe-layer fwd ms | speedup |");
markdown.AppendLine("| --- | --- | --- | --- |");
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
    double refMs, optMs;
    using (torch.no_grad())
    {
        refMs = Timing.MedianMs(device, warmup, iterations * 5, () => { using var s = torch.NewDisposeScope(); reference.Forward(x); });
        optMs = Timing.MedianMs(device, warmup, iterations * 5, () => { using var s = torch.NewDisposeScope(); optimised.Forward(x); });
    }
    rows.Add(new Dictionary<string, object> { ["shape"] = shape.Name, ["tokens"] = tokens, ["reference_forward_ms"] = refMs, ["moe_layer_forward_ms"] = optMs });
    string line = string.Create(CultureInfo.InvariantCulture, $"| {tokens} | {refMs:F3} | {optMs:F3} | {refMs / optMs:F2}× |");
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
