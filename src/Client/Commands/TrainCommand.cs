using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Silo.Device;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe train CONFIG</c>: submits the job to the cluster at the gateway (or, when none runs, to a one-silo cluster
/// started in this process), shows its progress as the job streams it, and prints the run's summary.
/// </summary>
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
        var ranks = CommonOptions.Ranks();
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("train", "Train a model from a config (on the running cluster, or one started in this process)") { config, steps, stopAfter, output, resume, device, ranks, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            var job = JobConfig.Load(parse.GetValue(config)!);
            if (parse.GetValue(steps) is { } s) job = job with { Training = job.Training with { Steps = s } };
            var submission = new JobSubmission
            {
                ConfigJson = job.ToJson(),
                OutputDirectory = Path.GetFullPath(parse.GetValue(output) ?? Paths.RunDirectory(job.Name)),
                ResumeFrom = parse.GetValue(resume) is { } r ? Path.GetFullPath(r) : null,
                StopAfter = parse.GetValue(stopAfter),
                // Several ranks use each silo's own device (embedded ones get cuda:0, cuda:1, … for --device cuda).
                Device = parse.GetValue(ranks) > 1 ? null : parse.GetValue(device),
                Replicas = parse.GetValue(ranks),
            };
            string? siloDevice = parse.GetValue(ranks) > 1 ? parse.GetValue(device) : null;
            await using var connection = await ClusterConnection.ConnectOrEmbedAsync(cluster.Read(parse), submission.Replicas, cancellation, siloDevice);
            return await Train(connection, job, submission, parse.GetValue(json));
        }));
        return command;
    }

    internal static async Task<int> Train(ClusterConnection connection, JobConfig job, JobSubmission submission, bool json)
    {
        string jobId = await connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).Submit(submission);
        var coordinator = connection.Grains.GetGrain<IJobCoordinatorGrain>(jobId);
        using var cancel = new CancellationTokenSource();
        // Ctrl+C cancels the job (it checkpoints), then the watch below sees it end.
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            _ = coordinator.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            var display = new TrainingDisplay(json);
            long total = Math.Min(job.Training.Steps, submission.StopAfter ?? job.Training.Steps);
            JobSnapshot final = null!;
            bool introduced = false;
            await display.WrapAsync(total, 0, async () =>
            {
                final = await JobProgress.Follow(coordinator, e =>
                {
                    if (e.Step is { } step && e.Kind == JobEventKind.Step) display.Report(JobProgress.ToTrainingProgress(step));
                    else if (e.Kind == JobEventKind.Status && e.Status == JobStatus.Running && !introduced)
                    {
                        introduced = true;
                        display.Note(Header(job, jobId, connection));
                    }
                }, cancel.Token);
            });
            return Finish(final, json, display);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    static string Header(JobConfig job, string jobId, ClusterConnection connection) => string.Create(CultureInfo.InvariantCulture,
        $"{job.Name}: job {jobId} on {(connection.IsEmbedded ? $"an embedded {connection.EmbeddedSilos}-silo cluster" : "the cluster")}; MoE {job.Moe.Experts} experts at {job.Moe.Layers}, top-{job.Moe.TopK}{(job.Moe.Residual ? ", residual" : "")}");

    static int Finish(JobSnapshot final, bool json, TrainingDisplay display)
    {
        if (final.Status != JobStatus.Completed || final.SummaryJson is null)
        {
            string message = final.Status == JobStatus.Cancelled
                ? $"cancelled at step {final.Step}; checkpoint: {final.Checkpoints.LastOrDefault() ?? "-"}"
                : $"job {final.JobId} {final.Status.ToString().ToLowerInvariant()}: {final.Error}";
            if (json) Console.WriteLine(JsonSerializer.Serialize(new { job_id = final.JobId, status = final.Status.ToString(), step = final.Step, error = final.Error, checkpoint = final.Checkpoints.LastOrDefault() }, JsonOutput.Options));
            else AnsiConsole.MarkupLine(final.Status == JobStatus.Cancelled ? Markup.Escape(message) : $"[red]error:[/] {Markup.Escape(message)}");
            return JobProgress.ExitCode(final.Status);
        }
        var summary = JsonSerializer.Deserialize<TrainingSummary>(final.SummaryJson, TrainingSessions.SummaryJson)!;
        if (json)
        {
            display.Report(new TrainingProgress(null, summary.Steps, TimeSpan.Zero, new EvaluationResult(summary.ValLoss, 0, summary.ValBitsPerByte), summary.Checkpoint));
            Console.WriteLine(JsonSerializer.Serialize(summary, JsonOutput.Options));
        }
        else
        {
            display.Report(new TrainingProgress(null, summary.Steps, TimeSpan.Zero, new EvaluationResult(summary.ValLoss, 0, summary.ValBitsPerByte), summary.Checkpoint));
            var table = new Table().AddColumns("", "value");
            table.AddRow("steps", summary.Steps.ToString(CultureInfo.InvariantCulture));
            table.AddRow("train loss", summary.TrainLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("validation loss", summary.ValLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("validation bits/byte", summary.ValBitsPerByte.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("unigram baseline loss", summary.UnigramValLoss.ToString("F4", CultureInfo.InvariantCulture));
            table.AddRow("parameters (active per token)", string.Create(CultureInfo.InvariantCulture, $"{summary.ParamsTotal:N0} ({summary.ParamsActivePerToken:N0})"));
            table.AddRow("tokens/s (median)", summary.TokensPerSecond.ToString("N0", CultureInfo.InvariantCulture));
            table.AddRow("orchestration overhead", final.OverheadFraction.ToString("P2", CultureInfo.InvariantCulture));
            table.AddRow("checkpoint", Markup.Escape(summary.Checkpoint ?? "-"));
            AnsiConsole.Write(table);
        }
        return 0;
    }
}
