using System.Globalization;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// The expert-parallel MoE layer across ranks (TARGETS.md, "Expert-parallel MoE layer"): each rank holds E / N
/// experts and T tokens, one thread per rank, NCCL between GPUs (shared memory between CPU ranks). Before timing,
/// every rank checks that the expert-parallel layer gives the output a one-process layer holding all experts gives
/// for its tokens. Reported: median fwd+bwd of the slowest rank, and the two exchanges alone on the same buffer.
/// </summary>
public static class ExpertParallelRun
{
    /// <summary>Per-GPU shape, then DeepSpeed on 2 GPUs, DeepSpeed and Tutel on 4 (ms, fwd+bwd; NaN: not measured).</summary>
    static readonly (BenchShape Shape, double DeepSpeed2, double DeepSpeed4, double Tutel4, bool Large)[] Rows =
    [
        (new("EP-T16384-E64", 16384, 2048, 8192, 64, 1), 16.16, 13.64, 12.98, true),
        (new("EP-T4096-E32", 4096, 1024, 4096, 32, 1), 8.78, 6.71, 5.33, false),
        (new("EP-T512-E32", 512, 1024, 4096, 32, 1), 9.47, 7.35, 5.32, false),
    ];

    public static int Run(int ranks, bool gpu, bool hierarchical, int nodeSize, int warmup, int iterations, string output)
    {
        var dtype = gpu ? ScalarType.BFloat16 : ScalarType.Float32;
        var communicators = gpu
            ? NcclGroup.Create(Enumerable.Range(0, ranks).ToArray())
            : Enumerable.Range(0, ranks).Select(new SharedMemoryGroup(ranks).Join).ToArray();
        var layout = new ParallelLayout(ranks, ranks, hierarchical ? nodeSize : ranks, hierarchical);
        string exchange = hierarchical ? $"hierarchical {ranks / nodeSize}×{nodeSize}" : "flat";
        var markdown = new StringBuilder();
        markdown.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Expert-parallel layer on {ranks} {(gpu ? "GPUs (NCCL)" : "CPU ranks (shared memory)")}, {exchange} all-to-all, {dtype}, capacity 1.25, fwd+bwd median of {iterations} after {warmup}."));
        markdown.AppendLine();
        markdown.AppendLine("| shape (per rank) | fwd ms | fwd+bwd ms | 2 exchanges ms | best peer ms | ratio vs peer | target ms | check |");
        markdown.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        var rows = new List<Dictionary<string, object>>();
        foreach (var (target, ds2, ds4, tutel4, large) in Rows)
        {
            var shape = gpu ? target : target.Scaled(16);
            var results = ThreadRanks.Run(communicators, comm => Measure(comm, comm.Rank, layout, shape, gpu, dtype, warmup, iterations));
            double peer = gpu ? (ranks == 2 ? ds2 : ranks == 4 ? Math.Min(ds4, tutel4) : double.NaN) : double.NaN;
            double goal = peer / (large ? 1.5 : 3);
            var slowest = results.MaxBy(r => r.TrainMs)!;
            string check = results.All(r => r.MaxRelativeError < (gpu ? 2e-2 : 1e-5)) ? "ok" : "FAILED";
            string line = string.Create(CultureInfo.InvariantCulture,
                $"| {shape.Name} | {slowest.ForwardMs:F2} | {slowest.TrainMs:F2} | {slowest.ExchangeMs:F2} | {peer:F2} | {peer / slowest.TrainMs:F2}× | {goal:F2} | {check} (max rel. error {results.Max(r => r.MaxRelativeError):E1}) |");
            Console.WriteLine(line);
            markdown.AppendLine(line);
            rows.Add(new()
            {
                ["shape"] = shape.Name,
                ["tokens_per_rank"] = shape.Tokens,
                ["d_model"] = shape.DModel,
                ["d_ff"] = shape.DFf,
                ["experts"] = shape.Experts,
                ["ranks"] = ranks,
                ["exchange"] = exchange,
                ["forward_ms"] = slowest.ForwardMs,
                ["forward_backward_ms"] = slowest.TrainMs,
                ["exchange_ms"] = slowest.ExchangeMs,
                ["per_rank_forward_backward_ms"] = results.Select(r => r.TrainMs).ToArray(),
                ["best_peer_ms"] = peer,
                ["target_ms"] = goal,
                ["check"] = check,
            });
        }
        foreach (var c in communicators) c.Dispose();
        Directory.CreateDirectory(output);
        string stem = Path.Combine(output, $"moe-layer-ep{ranks}{(hierarchical ? "-hierarchical" : "")}-{(gpu ? "h200" : "cpu")}");
        File.WriteAllText(stem + ".json", JsonSerializer.Serialize(new { ranks, exchange, dtype = dtype.ToString(), iterations, warmup, rows },
            new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        File.WriteAllText(stem + ".md", markdown.ToString());
        Console.WriteLine($"wrote {stem}.json and {stem}.md");
        return rows.All(r => (string)r["check"] == "ok") ? 0 : 1;
    }

    sealed record RankResult(double ForwardMs, double TrainMs, double ExchangeMs, double MaxRelativeError);

    static RankResult Measure(ICommunicator comm, int rank, ParallelLayout layout, BenchShape shape, bool gpu, ScalarType dtype, int warmup, int iterations)
    {
        var device = gpu ? new Device(DeviceType.CUDA, rank) : CPU;
        using var groups = RankGroups.Create(comm, layout, [shape.Experts]);
        double error = Check(groups, shape, device);
        using var scope = torch.NewDisposeScope();
        using var layer = BenchLayers.Build(shape, dropTokens: true, device, dtype, groups.ShardOf(shape.Experts));
        layer.Exchange = groups.ExchangeFor(shape.Experts);
        var inputs = Enumerable.Range(0, 3).Select(_ => torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype).requires_grad_()).ToArray();
        var gradient = torch.randn(shape.Tokens, shape.DModel, device: device).to_type(dtype);
        int turn = 0;
        double forward;
        using (torch.no_grad())
            forward = Timing.MedianMs(device, warmup, iterations, () => { using var s = torch.NewDisposeScope(); layer.forward(inputs[turn++ % 3]); });
        double train = Timing.MedianMs(device, warmup, iterations, () =>
        {
            using var s = torch.NewDisposeScope();
            torch.autograd.backward([layer.forward(inputs[turn % 3])], [gradient]);
        }, () =>
        {
            turn++;
            layer.zero_grad(set_to_none: true);
            foreach (var x in inputs) x.grad = null!;
        });
        // The forward's two exchanges on a buffer of the layer's size: [E · C, M] with C = ⌈1.25 · T / E⌉.
        long capacity = Capacity.Compute(shape.Tokens, shape.Experts, 1, 1.25, 4, gpu ? 8 : 1);
        var buffer = torch.randn(shape.Experts * capacity, shape.DModel, device: device).to_type(dtype);
        var exchange = layer.Exchange!;
        double exchangeMs = Timing.MedianMs(device, warmup, iterations, () => { using var s = torch.NewDisposeScope(); exchange.Exchange(exchange.Exchange(buffer)); });
        return new RankResult(forward, train, exchangeMs, error);
    }

    /// <summary>The expert-parallel layer against one holding all experts (same weights) on this rank's tokens, fp32.</summary>
    static double Check(RankGroups groups, BenchShape shape, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var small = new BenchShape("check", 64 * groups.Size, 64, 128, shape.Experts, 1);
        using var first = new Generator(7);
        using var whole = BenchLayers.Build(small, dropTokens: true, device, ScalarType.Float32, init: first);
        using var second = new Generator(7);
        using var parallel = BenchLayers.Build(small, dropTokens: true, device, ScalarType.Float32, groups.ShardOf(small.Experts), second);
        parallel.Exchange = groups.ExchangeFor(small.Experts);
        using var inputs = new Generator(100 + (ulong)groups.Rank);
        var x = torch.randn([small.Tokens, small.DModel], generator: inputs).to(device);
        using var noGrad = torch.no_grad();
        var expected = whole.forward(x);
        var actual = parallel.forward(x);
        return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item<float>();
    }
}
