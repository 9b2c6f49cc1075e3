using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe eval CHECKPOINT</c>: loss, perplexity and bits per byte on a split or a text file.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint") { Description = "Checkpoint folder (runs/NAME/checkpoints/step-…)" };
        var split = new Option<string>("--split") { Description = "validation or test", DefaultValueFactory = _ => "test" };
        split.AcceptOnlyFromAmong("validation", "test");
        var text = new Option<string?>("--text") { Description = "Evaluate on this UTF-8 text file instead of a split" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("eval", "Evaluate a checkpoint") { checkpoint, split, text, device, json };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(json), () =>
        {
            var saved = ModelCheckpoint.Open(parse.GetValue(checkpoint)!);
            var target = TorchRuntime.ResolveDevice(parse.GetValue(device) ?? saved.Config.Device);
            using var model = saved.LoadModel(target);
            TokenStream stream;
            string source;
            if (parse.GetValue(text) is { } file)
            {
                stream = TrainingData.EncodeFile(file, saved.Tokenizer);
                source = file;
            }
            else
            {
                var data = TrainingData.Load(saved.Config, Paths.Cache);
                source = parse.GetValue(split)!;
                stream = source == "test" ? data.Test : data.Validation;
            }
            var result = Evaluator.Evaluate(model, stream, target, 8);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { source, step = saved.Step, loss = result.Loss, perplexity = result.Perplexity, bits_per_byte = result.BitsPerByte, tokens = result.Tokens }, JsonOutput.Options));
            else
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{source} ({result.Tokens:N0} tokens, step {saved.Step}): loss {result.Loss:F4}  perplexity {result.Perplexity:F2}  bits/byte {result.BitsPerByte:F4}"));
            return 0;
        }));
        return command;
    }
}
