using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Bench;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Tokenizers;
using Orleans.MoE.Kernels.Training;
using TorchSharp;
using static TorchSharp.torch;

// Decode latency of the serving engine (continuous batching, KV-cache slots, dropless routing) on TARGETS.md's
// "Generation" shape: a batch of B requests with random prompts of P tokens, G tokens each (greedy, end of text
// ignored); the first step is the prefill (and first token), every later step gives each request one token.
// Usage: GenerationBench [--config configs/gpu-350m-pr-moe-32-64.json] [--device auto|cpu|cuda] [--prompt 128]
//        [--generate 64] [--batches 1,8,64] [--decode eager,graphs] [--out bench/results]
//        (--decode: eager, fixed-shapes, graphs; the first is the reference the others are compared with)
//        GenerationBench --tensor-slicing L --expert-parallel G ...   (one replica of L × G ranks: GPUs 0…LG−1, or CPU threads)
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
string Get(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
int Int(string name, int fallback) => int.Parse(Get(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

var device = TorchRuntime.ResolveDevice(Get("device", "auto"));
bool gpu = device.type == DeviceType.CUDA;
// On a CPU the 4.1 B-parameter shape would take hours: the tiny PR-MoE and shorter sequences stand in.
var config = JobConfig.Load(Get("config", gpu ? "configs/gpu-350m-pr-moe-32-64.json" : "configs/tiny-pr-moe.json"));
int prompt = Int("prompt", gpu ? 128 : 32), generate = Int("generate", gpu ? 64 : 16);
int[] batches = Get("batches", gpu ? "1,8,64" : "1,8").Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray();
string output = Get("out", Path.Combine("bench", "results"));

var tokenizer = TokenizerFactory.Create(config.Model.Tokenizer);
using var init = new Generator(1);
var clock = Stopwatch.StartNew();
using var model = new GptModel(config.Model, config.Moe, tokenizer.VocabSize, init);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{config.Name}: {ParameterCount.Of(model).Total / 1e6:F1} M parameters, built in {clock.Elapsed.TotalSeconds:F0} s"));

if (options.TryGetValue("tensor-slicing", out var l) | options.TryGetValue("expert-parallel", out var g))
{
    // One replica over several ranks, three layouts in the same run (the whole model stays on the CPU, sliced per rank).
    string text = ReplicaRun.Run(model, tokenizer, gpu, int.Parse(l ?? "1", CultureInfo.InvariantCulture), int.Parse(g ?? "1", CultureInfo.InvariantCulture), prompt, generate, batches);
    string stem = Path.Combine(output, $"generation-replica-{(gpu ? "h200" : "cpu")}");
    Directory.CreateDirectory(output);
    File.WriteAllText(stem + ".md", $"# Generation on one replica, {config.Name}\n\n`dotnet run -c Release --project bench/GenerationBench -- {string.Join(' ', args)}`\n\n{text}");
    Console.WriteLine($"wrote {stem}.md");
    return 0;
}

model.to(device);
model.ComputeType = ComputePrecision.For("auto", device);
if (gpu) CheckGatheredGemm(device);
string precision = model.ComputeType == ScalarType.BFloat16 ? "bf16" : "fp32";
// The first mode is the reference the others are compared with, on the same prompts in the same process.
var modes = Get("decode", gpu ? "eager,graphs" : "eager,fixed-shapes").Split(',').Select(ParseMode).ToArray();
var rows = new List<Dictionary<string, object>>();
var table = new StringBuilder();
table.AppendLine($"| batch | decode | prefill ms | per-token p50 ms | per-token p99 ms | decode tokens/s (B / p50) | round tokens/s (with prefill) | p50 vs {Name(modes[0])} | tokens as {Name(modes[0])} | best peer (TARGETS.md) | target |");
table.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
string? graphProblem = null;
foreach (int batch in batches)
{
    DecodeTimes? reference = null;
    List<int>[]? referenceTokens = null;
    foreach (var mode in modes)
    {
        using var forward = new LocalBatchForward(model, device, batch, mode);
        using var engine = new GenerationEngine(forward, tokenizer, batch);
        var random = new Random(7 + batch); // the same prompts for every mode
        ReplicaRun.Round(engine, batch, 4, prompt, random, tokenizer, device, gpu); // warm-up: kernels, allocator, the cache, the graphs
        var generated = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var times = ReplicaRun.Round(engine, batch, generate, prompt, random, tokenizer, device, gpu, generated);
        var result = DecodeTimes.From(times, batch, generate);
        reference ??= result;
        referenceTokens ??= generated;
        graphProblem ??= forward.Decoder?.GraphProblem;
        // Greedy tokens equal to the reference's, position by position (bf16 sums in another order can flip a near tie,
        // after which a request's continuation differs).
        int same = 0, total = 0;
        for (int r = 0; r < batch; r++)
            for (int i = 0; i < generated[r].Count; i++, total++)
                if (i < referenceTokens[r].Count && referenceTokens[r][i] == generated[r][i]) same++;
        double agreement = (double)same / total;
        var peer = BestPeer(batch);
        // TARGETS.md's tokens/s are the batch over the per-token p50 (decode only); the round's includes the prefill.
        double decodeTokensPerSecond = batch * 1000.0 / result.P50;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batch {batch,3} {Name(mode),-12}: prefill {result.Prefill:F1} ms, per token p50 {result.P50:F2} ms, p99 {result.P99:F2} ms, {decodeTokensPerSecond:F0} decode tokens/s, {result.TokensPerSecond:F0} with prefill, {reference.P50 / result.P50:F2}x, tokens {agreement:P1}"));
        table.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| {batch} | {Name(mode)} | {result.Prefill:F1} | {result.P50:F2} | {result.P99:F2} | {decodeTokensPerSecond:F0} | {result.TokensPerSecond:F0} | {reference.P50 / result.P50:F2}× | {agreement:P1} | {peer} | {Target(batch)} |"));
        rows.Add(new Dictionary<string, object>
        {
            ["batch"] = batch,
            ["decode"] = Name(mode),
            ["graphs"] = forward.Decoder?.Graphs ?? false,
            ["prompt"] = prompt,
            ["generate"] = generate,
            ["prefill_ms"] = result.Prefill,
            ["per_token_p50_ms"] = result.P50,
            ["per_token_p99_ms"] = result.P99,
            ["decode_tokens_per_second"] = decodeTokensPerSecond,
            ["round_tokens_per_second"] = result.TokensPerSecond,
            ["p50_speedup_vs_reference"] = reference.P50 / result.P50,
            ["tokens_equal_to_reference"] = agreement,
            ["step_ms"] = times,
        });
    }
}
if (graphProblem is not null) Console.WriteLine($"CUDA graphs were not used: {graphProblem}");

string name = gpu ? "generation-h200" : "generation-cpu";
Directory.CreateDirectory(output);
File.WriteAllText(Path.Combine(output, name + ".json"), JsonSerializer.Serialize(new { model = config.Name, device = device.ToString(), precision, graph_problem = graphProblem, rows }, new JsonSerializerOptions { WriteIndented = true }));
File.WriteAllText(Path.Combine(output, name + ".md"),
    $"# Generation, {config.Name} on {device} ({precision}), prompt {prompt}, {generate} tokens, greedy\n\n" +
    $"`dotnet run -c Release --project bench/GenerationBench -- {string.Join(' ', args)}`\n\n{table}");
Console.WriteLine($"wrote {Path.Combine(output, name)}.md/.json");
return 0;

// The in-place gathered expert GEMM (cuBLAS over device pointer arrays) against the gather-and-bmm reference, on
// fresh random bf16 inputs of the decode shape, before anything is timed.
static void CheckGatheredGemm(Device device)
{
    using var scope = torch.NewDisposeScope();
    var x = torch.randn(8, 1024, device: device).to_type(ScalarType.BFloat16);
    var w = (torch.randn(32, 1024, 4096, device: device) * 0.02).to_type(ScalarType.BFloat16);
    var experts = torch.randint(0, 32, [8], device: device);
    var reference = GatheredExpertGemm.Gathered(x, w, experts).to_type(ScalarType.Float32);
    var inPlace = GatheredExpertGemm.Multiply(x, w, experts).to_type(ScalarType.Float32);
    double error = ((inPlace - reference).abs().max() / reference.abs().max()).item<float>();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"gathered expert GEMM: {(GatheredExpertGemm.InPlace(w) ? "in place (cuBLAS)" : "gather + bmm")}, max relative error against gather + bmm {error:E1}"));
    if (error > 2e-2) throw new InvalidOperationException($"the gathered expert GEMM is off by {error:E1}");
}

static DecodeMode ParseMode(string name) => name.Trim() switch
{
    "eager" => DecodeMode.Eager,
    "fixed-shapes" => DecodeMode.FixedShapes,
    "graphs" => DecodeMode.Graphs,
    _ => throw new ArgumentException($"--decode: '{name}' is not one of eager, fixed-shapes, graphs"),
};

static string Name(DecodeMode mode) => mode switch
{
    DecodeMode.Eager => "eager",
    DecodeMode.FixedShapes => "fixed-shapes",
    _ => "graphs",
};

// TARGETS.md "Generation": the better of its two PyTorch peers (grouped-GEMM layers) and this issue's targets.
static string BestPeer(int batch) => batch switch
{
    1 => "13.4 ms p50",
    8 => "14.3 ms p50",
    64 => "15.8 ms p50, 4,065 tokens/s",
    _ => "",
};

static string Target(int batch) => batch switch
{
    1 or 8 => "≤ 3 ms",
    64 => "≥ 12,000 decode tokens/s",
    _ => "",
};
