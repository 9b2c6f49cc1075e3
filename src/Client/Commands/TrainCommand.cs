using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Training;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe train CONFIG</c>: trains on the embedded default (one process), evaluates, writes a checkpoint.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "Job config (JSON), e.g. configs/tiny-pr-moe.json" };
        var steps = new Option<int?>("--steps") { Description = "Total optimiser steps (overrides training.steps and the schedule length)" };
        var stopAfter = new Option<long?>("--stop-after") { Description = "Stop (and checkpoint) after this many steps, keeping the schedule" };
        var output = new Option<string?>("--out") { Description = "Output folder (default runs/NAME)" };
        var resume = new Option<string?>("--resume") { Description = "Checkpoint folder to continue from" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var command = new Command("train", "Train a model from a config on this machine") { config, steps, stopAfter, output, resume, device, json };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(json), () =>
        {
            var job = JobConfig.Load(parse.GetValue(config)!);
            if (parse.GetValue(steps) is { } s) job = job with { Training = job.Training with { Steps = s } };
            var options = new TrainingRunOptions
            {
                OutputDirectory = Path.GetFullPath(parse.GetValue(output) ?? Paths.RunDirectory(job.Name)),
                CacheDirectory = Paths.Cache,
                ResumeFrom = parse.GetValue(resume),
                StopAfter = parse.GetValue(stopAfter),
                Device = parse.GetValue(device),
            };
            return Train(job, options, parse.GetValue(json));
        }));
        return command;
    }

    static int Train(JobConfig job, TrainingRunOptions options, bool json)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        using var run = TrainingRun.Create(job, options);
        var count = run.Parameters;
        if (!json)
        {
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{job.Name}: {count.Total:N0} parameters ({count.ActivePerToken:N0} active per token), MoE {job.Moe.Experts} experts at {job.Moe.Layers}, top-{job.Moe.TopK}{(job.Moe.Residual ? ", residual" : "")}, on {run.Device}; {run.Data.Train.Tokens.Length:N0} training tokens ({run.Data.Tokenizer.Name})")));
        }
        var display = new TrainingDisplay(json);
        var summary = display.Wrap(Math.Min(job.Training.Steps, options.StopAfter ?? job.Training.Steps), run.Trainer.Step,
            () => run.Run(display, cancel.Token));
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(summary, JsonOutput.Options));
        }
        else
        {
            var table = new Table().AddColumns("", "value");
            table.AddRow("steps", summary.Steps.ToString(CultureInfo.InvariantCulture));
            table.AddRow("train loss", summary.TrainLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("validation loss", summary.ValLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("validation bits/byte", summary.ValBitsPerByte.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("unigram baseline loss", summary.UnigramValLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("tokens/s (median)", summary.TokensPerSecond.ToString("N0", CultureInfo.InvariantCulture));
            table.AddRow("checkpoint", Markup.Escape(summary.Checkpoint ?? "-"));
            AnsiConsole.Write(table);
        }
        return cancel.IsCancellationRequested ? 130 : 0;
    }
}
