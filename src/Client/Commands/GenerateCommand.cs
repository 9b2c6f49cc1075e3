using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Native;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe generate CHECKPOINT PROMPT</c>: samples a continuation, streaming it as it is decoded; with --on-cluster the
/// first argument names a served model and the completion streams from its replicas through the router grain.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Checkpoint folder (with --on-cluster: a served model's name)" };
        var prompt = new Argument<string>("prompt") { Description = "Text to continue" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.8 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass", DefaultValueFactory = _ => 0.95 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1 };
        var stop = new Option<string[]>("--stop") { Description = "Stop before this text (repeatable)", AllowMultipleArgumentsPerToken = false };
        var onCluster = new Option<bool>("--on-cluster") { Description = "Ask a model served on the running cluster (moe serve), streamed through its router" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("generate", "Generate text from a checkpoint, or from a served model") { checkpoint, prompt, maxTokens, temperature, topP, seed, stop, onCluster, device, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => parse.GetValue(onCluster)
            ? CommandRunner.RunAsync(parse.GetValue(json), () => FromCluster(parse.GetValue(checkpoint)!, parse.GetValue(prompt)!, new CompletionRequest
            {
                Prompt = parse.GetValue(prompt)!,
                MaxTokens = parse.GetValue(maxTokens),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                Seed = parse.GetValue(seed),
                Stop = parse.GetValue(stop) ?? [],
            }, cluster.Read(parse), parse.GetValue(json), cancellation))
            : Task.FromResult(CommandRunner.Run(parse.GetValue(json), () =>
        {
            var options = new SamplingOptions
            {
                MaxTokens = parse.GetValue(maxTokens),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                Seed = parse.GetValue(seed),
                Stop = parse.GetValue(stop) ?? [],
            };
            options.Validate();
            var saved = ModelCheckpoint.Open(parse.GetValue(checkpoint)!);
            var target = TorchRuntime.ResolveDevice(parse.GetValue(device) ?? saved.Config.Device);
            using var model = saved.LoadModel(target);
            var generator = new TextGenerator(model, saved.Tokenizer, target);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var text = new System.Text.StringBuilder();
            int tokens = 0;
            FinishReason? finish = null;
            bool asJson = parse.GetValue(json);
            string text0 = parse.GetValue(prompt)!;
            if (!asJson) Console.Write(text0);
            foreach (var piece in generator.Generate(text0, options))
            {
                if (piece.Token is not null) tokens++;
                finish = piece.Finish ?? finish;
                text.Append(piece.Text);
                if (!asJson) Console.Write(piece.Text);
            }
            if (asJson)
                Console.WriteLine(JsonSerializer.Serialize(new { prompt = text0, completion = text.ToString(), tokens, finish_reason = finish?.ToString().ToLowerInvariant(), seconds = clock.Elapsed.TotalSeconds }, JsonOutput.Options));
            else
                Console.WriteLine();
            return 0;
        })));
        return command;
    }

    /// <summary>Streams a completion from the served model through its router grain (the same path as the HTTP API).</summary>
    static async Task<int> FromCluster(string model, string prompt, CompletionRequest request, ClusterAddress address, bool asJson, CancellationToken cancellation)
    {
        await using var connection = await ClusterConnection.ConnectAsync(address, cancellation);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var text = new System.Text.StringBuilder();
        CompletionChunk? last = null;
        try
        {
            await foreach (var chunk in connection.Grains.GetGrain<IInferenceRouterGrain>(model).Complete(request, cancellation).WithCancellation(cancellation))
            {
                // The prompt is echoed once the model has taken the request (not before a refusal).
                if (!asJson && last is null) Console.Write(prompt);
                text.Append(chunk.Text);
                last = chunk;
                if (!asJson) Console.Write(chunk.Text);
            }
        }
        catch (KeyNotFoundException e)
        {
            throw new ArgumentException(e.Message, nameof(model), e);
        }
        if (asJson)
            Console.WriteLine(JsonSerializer.Serialize(new { prompt, completion = text.ToString(), tokens = last?.CompletionTokens, finish_reason = last?.FinishReason, replica = last?.Replica, seconds = clock.Elapsed.TotalSeconds }, JsonOutput.Options));
        else
            Console.WriteLine();
        return 0;
    }
}
