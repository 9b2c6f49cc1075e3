using System.Diagnostics;
using System.Globalization;
using System.Text;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Bench;

/// <summary>
/// The decode benchmark on one replica of L × G ranks (threads of this process: GPUs over NCCL, or CPU ranks over
/// shared memory), for three layouts of the same model in the same run: tensor slicing with the coordinated
/// all-to-all, the same with the flat exchange, and the straightforward path (no tensor slicing, every rank an expert
/// rank, flat exchange).
/// </summary>
internal static class ReplicaRun
{
    public static string Run(GptModel whole, ITextTokenizer tokenizer, bool gpu, int tensorSlicing, int expertParallel, int prompt, int generate, int[] batches)
    {
        int world = tensorSlicing * expertParallel;
        var variants = new (string Name, ServingLayout Layout)[]
        {
            ($"L={tensorSlicing} G={expertParallel}, coordinated all-to-all", new ServingLayout(tensorSlicing, expertParallel)),
            ($"L={tensorSlicing} G={expertParallel}, flat all-to-all", new ServingLayout(tensorSlicing, expertParallel) { CoordinatedAllToAll = false }),
            ($"L=1 G={world} (no tensor slicing), flat all-to-all", new ServingLayout(1, world) { CoordinatedAllToAll = false }),
        };
        var table = new StringBuilder();
        table.AppendLine($"Replica of {world} {(gpu ? "GPUs (NCCL)" : "CPU ranks (shared memory)")}, prompt {prompt}, {generate} tokens, greedy.");
        table.AppendLine();
        table.AppendLine("| layout | batch | prefill ms | per-token p50 ms | per-token p99 ms | tokens/s |");
        table.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var (name, layout) in variants)
        {
            var communicators = gpu
                ? NcclGroup.Create(Enumerable.Range(0, world).ToArray())
                : Enumerable.Range(0, world).Select(new SharedMemoryGroup(world).Join).ToArray();
            var rows = ThreadRanks.Run(communicators, replica => Serve(whole, tokenizer, gpu, layout, replica, prompt, generate, batches));
            foreach (var (batch, prefill, p50, p99, tokensPerSecond) in rows[0]!)
            {
                string line = string.Create(CultureInfo.InvariantCulture, $"| {name} | {batch} | {prefill:F1} | {p50:F2} | {p99:F2} | {tokensPerSecond:F0} |");
                Console.WriteLine(line);
                table.AppendLine(line);
            }
            foreach (var c in communicators) c.Dispose();
        }
        return table.ToString();
    }

    static List<DecodeTimes>? Serve(
        GptModel whole, ITextTokenizer tokenizer, bool gpu, ServingLayout layout, ICommunicator replica, int prompt, int generate, int[] batches)
    {
        var device = gpu ? torch.device(DeviceType.CUDA, replica.Rank) : torch.CPU;
        using var groups = ServingGroups.Create(replica, layout);
        var sliced = SlicedModel.FromModel(whole, groups);
        sliced.to(device);
        sliced.ComputeType = gpu ? ScalarType.BFloat16 : ScalarType.Float32;
        var rank = new ReplicaRank(sliced, groups, replica, device, batches.Max());
        if (!rank.IsLeader)
        {
            rank.Follow();
            rank.Dispose();
            sliced.Dispose();
            return null;
        }
        var random = new Random(7);
        var results = new List<DecodeTimes>();
        using (var engine = new GenerationEngine(new ReplicaBatchForward(rank), tokenizer, batches.Max()))
        {
            foreach (int batch in batches)
            {
                Round(engine, batch, 4, prompt, random, tokenizer, device, gpu);
                results.Add(DecodeTimes.From(Round(engine, batch, generate, prompt, random, tokenizer, device, gpu), batch, generate));
            }
        }
        sliced.Dispose();
        return results;
    }

    /// <summary>B requests of random prompts, G tokens each; every engine step timed (the first is the prefill).</summary>
    /// <param name="generated">When given, receives each request's tokens (request i at index i).</param>
    public static List<double> Round(GenerationEngine engine, int batch, int tokens, int prompt, Random random, ITextTokenizer tokenizer, Device device, bool gpu, List<int>[]? generated = null)
    {
        for (int i = 0; i < batch; i++)
        {
            var ids = Enumerable.Range(0, prompt).Select(_ => random.Next(tokenizer.VocabSize)).Select(t => t == tokenizer.EndOfText ? 0 : t).ToArray();
            engine.Submit(new GenerationRequest($"r{i}", ids, new SamplingOptions { MaxTokens = tokens, Temperature = 0, IgnoreEndOfText = true }));
        }
        var steps = new List<double>();
        while (engine.HasWork)
        {
            if (gpu) torch.cuda.synchronize(device);
            long start = Stopwatch.GetTimestamp();
            var events = engine.Step();
            if (gpu) torch.cuda.synchronize(device);
            steps.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            if (generated is null) continue;
            foreach (var e in events)
                if (e.Token is { } token) generated[int.Parse(e.RequestId.AsSpan(1), CultureInfo.InvariantCulture)].Add(token);
        }
        return steps;
    }
}
