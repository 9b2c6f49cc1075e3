using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe watch JOB</c>: follows a job live (phase, step, loss, tokens/s, ETA, balance) and exits with its outcome.</summary>
internal static class WatchCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("watch", "Follow a job until it ends; the exit code is its outcome (0 completed, 1 failed, 130 cancelled)") { job, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var coordinator = await JobsCommand.Find(connection, parse.GetValue(job)!);
            bool asJson = parse.GetValue(json);
            JobSnapshot final;
            if (asJson || !AnsiConsole.Profile.Capabilities.Interactive)
            {
                final = await JobProgress.Follow(coordinator, e => Print(e, asJson), cancellation);
            }
            else
            {
                var view = new JobWatchView(parse.GetValue(job)!);
                final = null!;
                await AnsiConsole.Live(view.Render()).AutoClear(false).StartAsync(async live =>
                {
                    final = await JobProgress.Follow(coordinator, e =>
                    {
                        view.Apply(e);
                        live.UpdateTarget(view.Render());
                    }, cancellation);
                });
            }
            if (asJson)
                Console.WriteLine(JsonSerializer.Serialize(new { job_id = final.JobId, status = final.Status.ToString(), step = final.Step, loss = final.LastStep?.Loss, error = final.Error, checkpoint = final.Checkpoints.LastOrDefault() }, JsonOutput.Options));
            else
                Console.WriteLine($"{final.JobId}: {final.Status.ToString().ToLowerInvariant()}{(final.Error is null ? "" : ": " + final.Error)}");
            return JobProgress.ExitCode(final.Status);
        }));
        return command;
    }

    static void Print(JobEvent e, bool json)
    {
        if (json)
        {
            Console.Error.WriteLine(JsonSerializer.Serialize(new
            {
                @event = e.Kind.ToString().ToLowerInvariant(),
                status = e.Status.ToString(),
                phase = e.Phase?.ToString(),
                step = e.Step?.Step,
                total = e.Step?.TotalSteps,
                loss = e.Step?.Loss,
                tokens_per_second = e.Step?.TokensPerSecond,
                balance = e.Step?.Balance,
                dropped = e.Step?.DroppedFraction,
                eta_seconds = e.Step?.EtaSeconds,
                message = e.Message,
            }, JsonOutput.Options));
        }
        else if (e.Step is { } s && e.Kind == JobEventKind.Step)
        {
            if (s.Step == 1 || s.Step == s.TotalSteps || s.Step % Math.Max(1, s.TotalSteps / 20) == 0)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {s.Step}/{s.TotalSteps}  loss {s.Loss:F4}  {s.TokensPerSecond:N0} tok/s  balance {s.Balance:F2}  dropped {s.DroppedFraction:P1}  ETA {TimeSpan.FromSeconds(s.EtaSeconds):h\\:mm\\:ss}"));
        }
        else
        {
            Console.WriteLine($"{e.Status}{(e.Phase is { } p ? $" ({p})" : "")}{(e.Message is null ? "" : ": " + e.Message)}");
        }
    }
}
