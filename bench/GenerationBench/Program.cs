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
//        [--generate 64] [--batches 1,8,64] [--out bench/results]
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

var random = new Random(7);
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
string precision = model.ComputeType == ScalarType.BFloat16 ? "bf16" : "fp32";
var rows = new List<Dictionary<string, object>>();
var table = new StringBuilder();
table.AppendLine("| batch | prefill ms | per-token p50 ms | per-token p99 ms | tokens/s |");
table.AppendLine("| --- | --- | --- | --- | --- |");
foreach (int batch in batches)
{
    using var engine = new GenerationEngine(model, tokenizer, device, batch);
    ReplicaRun.Round(engine, batch, 4, prompt, random, tokenizer, device, gpu); // warm-up: kernels, allocator, the cache
    var times = ReplicaRun.Round(engine, batch, generate, prompt, random, tokenizer, device, gpu);
    var (_, prefill, p50, p99, tokensPerSecond) = DecodeTimes.From(times, batch, generate);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"batch {batch,3}: prefill {prefill:F1} ms, per token p50 {p50:F2} ms, p99 {p99:F2} ms, {tokensPerSecond:F0} tokens/s"));
    table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {batch} | {prefill:F1} | {p50:F2} | {p99:F2} | {tokensPerSecond:F0} |"));
    rows.Add(new Dictionary<string, object>
    {
        ["batch"] = batch,
        ["prompt"] = prompt,
        ["generate"] = generate,
        ["prefill_ms"] = prefill,
        ["per_token_p50_ms"] = p50,
        ["per_token_p99_ms"] = p99,
        ["tokens_per_second"] = tokensPerSecond,
        ["step_ms"] = times,
    });
}

string name = gpu ? "generation-h200" : "generation-cpu";
Directory.CreateDirectory(output);
File.WriteAllText(Path.Combine(output, name + ".json"), JsonSerializer.Serialize(new { model = config.Name, device = device.ToString(), precision, rows }, new JsonSerializerOptions { WriteIndented = true }));
File.WriteAllText(Path.Combine(output, name + ".md"),
    $"# Generation, {config.Name} on {device} ({precision}), prompt {prompt}, {generate} tokens, greedy\n\n" +
    $"`dotnet run -c Release --project bench/GenerationBench -- {string.Join(' ', args)}`\n\n{table}");
Console.WriteLine($"wrote {Path.Combine(output, name)}.md/.json");
return 0;
