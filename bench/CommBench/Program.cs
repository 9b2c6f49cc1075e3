using System.Globalization;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Bench.Comm;
using Orleans.MoE.CommConformance;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

// All-to-all (bf16, equal splits) and all-reduce through the project's NCCL binding, one thread per GPU.
// Usage: CommBench [--gpus 2,4] [--sizes-mb 1,8,64,256] [--iterations 20] [--warmup 5] [--out bench/results] [--check]
// --check runs the communicator conformance checks (and the abort check) on NCCL instead of timing, with a 20 s
// watchdog so that a failing check cannot stall the run.
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length && !args[p.i + 1].StartsWith("--", StringComparison.Ordinal) ? args[p.i + 1] : "");
string Get(string name, string fallback) => options.TryGetValue(name, out var v) && v.Length > 0 ? v : fallback;
int[] Ints(string text) => text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();

TorchRuntime.ResolveDevice("cuda");
int available = torch.cuda.device_count();
var gpuCounts = Ints(Get("gpus", "2,4")).Where(n => n <= available).ToArray();
if (gpuCounts.Length == 0)
{
    Console.Error.WriteLine($"this host has {available} GPU(s); CommBench needs at least 2");
    return 2;
}
string output = Get("out", Path.Combine("bench", "results"));
Directory.CreateDirectory(output);

if (options.ContainsKey("check"))
{
    bool allPassed = true;
    var report = new List<object>();
    foreach (int n in gpuCounts)
    {
        var group = NcclGroup.Create(Enumerable.Range(0, n).ToArray(), TimeSpan.FromSeconds(20));
        var checks = RankThreads.Run(n, rank =>
        {
            using var comm = group[rank];
            return CommunicatorChecks.RunAll(comm, new torch.Device(DeviceType.CUDA, rank));
        }, TimeSpan.FromMinutes(3)).SelectMany(r => r).ToList();
        var doomed = NcclGroup.Create(Enumerable.Range(0, n).ToArray(), TimeSpan.FromSeconds(20));
        checks.AddRange(RankThreads.Run(n, rank =>
        {
            using var comm = doomed[rank];
            return CommunicatorChecks.AbortWhenOneRankFails(comm, new torch.Device(DeviceType.CUDA, rank), TimeSpan.FromSeconds(20));
        }, TimeSpan.FromMinutes(2)));
        foreach (var check in checks.Where(c => c.Rank == 0 || !c.Passed))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{n} GPUs, rank {check.Rank}: {(check.Passed ? "ok    " : "FAILED")} {check.Name} ({check.Milliseconds:F1} ms){(check.Passed ? "" : ": " + check.Error)}"));
        allPassed &= checks.All(c => c.Passed);
        report.Add(new { gpus = n, passed = checks.Count(c => c.Passed), failed = checks.Count(c => !c.Passed), checks });
    }
    File.WriteAllText(Path.Combine(output, "comm-check-nccl.json"), JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine(allPassed ? "all NCCL checks passed" : "some NCCL checks FAILED");
    return allPassed ? 0 : 1;
}

int iterations = int.Parse(Get("iterations", "20"), CultureInfo.InvariantCulture);
int warmup = int.Parse(Get("warmup", "5"), CultureInfo.InvariantCulture);
var sizes = Ints(Get("sizes-mb", "1,8,64,256"));
var torchReference = TorchReference.Load(output);
var rows = new List<Dictionary<string, object>>();
var markdown = new StringBuilder();
markdown.AppendLine("| GPUs | op | MB/rank | median µs | back-to-back µs | busbw GB/s | torch median µs | torch busbw GB/s | target | verdict |");
markdown.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
foreach (int n in gpuCounts)
{
    var group = NcclGroup.Create(Enumerable.Range(0, n).ToArray(), TimeSpan.FromSeconds(60));
    foreach (string operation in new[] { "all-to-all", "all-reduce" })
    {
        foreach (int megabytes in sizes)
        {
            long bytes = (long)megabytes << 20;
            var start = new Barrier(n);
            var times = RankThreads.Run(n, rank =>
            {
                using var scope = torch.NewDisposeScope();
                var comm = group[rank];
                var device = new torch.Device(DeviceType.CUDA, rank);
                var send = torch.ones(bytes / 2, ScalarType.BFloat16, device);
                var receive = torch.empty_like(send);
                Action run = operation == "all-to-all" ? () => comm.AllToAll(send, receive) : () => comm.AllReduce(send);
                return CollectiveTiming.Measure(comm, start, warmup, iterations, run);
            }, TimeSpan.FromMinutes(5));
            var (median, backToBack) = CollectiveTiming.Combine(times);
            // Bus bandwidth as nccl-tests defines it: what each link carries, comparable across GPU counts.
            double factor = operation == "all-to-all" ? (n - 1.0) / n : 2.0 * (n - 1) / n;
            double busbw = bytes / (median * 1e-6) * factor / 1e9;
            var (torchMedian, torchBusbw) = torchReference.For(n, operation, megabytes);
            string target = Targets.For(operation, n, megabytes);
            string verdict = Targets.Verdict(target, median, busbw);
            rows.Add(new()
            {
                ["gpus"] = n,
                ["op"] = operation,
                ["mb"] = megabytes,
                ["bytes_per_rank"] = bytes,
                ["median_us"] = median,
                ["back_to_back_us"] = backToBack,
                ["busbw_GBps"] = busbw,
                ["busbw_back_to_back_GBps"] = bytes / (backToBack * 1e-6) * factor / 1e9,
                ["torch_median_us"] = torchMedian,
                ["torch_busbw_GBps"] = torchBusbw,
                ["target"] = target,
                ["verdict"] = verdict,
            });
            string line = string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {operation} | {megabytes} | {median:F1} | {backToBack:F1} | {busbw:F1} | {torchMedian:F1} | {torchBusbw:F1} | {target} | {verdict} |");
            Console.WriteLine(line);
            markdown.AppendLine(line);
        }
    }
    RankThreads.Run(n, rank =>
    {
        group[rank].Dispose();
        return 0;
    }, TimeSpan.FromMinutes(1));
}
File.WriteAllText(Path.Combine(output, "comm-a2a-csharp.json"), JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
File.WriteAllText(Path.Combine(output, "comm-a2a-csharp.md"), markdown.ToString());
return 0;
