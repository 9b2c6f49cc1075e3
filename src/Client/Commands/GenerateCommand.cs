using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Native;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe generate CHECKPOINT PROMPT</c>: samples a continuation, streaming it as it is decoded.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Checkpoint folder" };
        var prompt = new Argument<string>("prompt") { Description = "Text to continue" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.8 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass", DefaultValueFactory = _ => 0.95 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 1 };
        var stop = new Option<string[]>("--stop") { Description = "Stop before this text (repeatable)", AllowMultipleArgumentsPerToken = false };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("generate", "Generate text from a checkpoint") { checkpoint, prompt, maxTokens, temperature, topP, seed, stop, device, json };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(json), () =>
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
        }));
        return command;
    }
}
