using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe jobs</c>, <c>moe cancel JOB</c>: the cluster's jobs, and stopping one.</summary>
internal static class JobsCommand
{
    public static Command Create()
    {
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("jobs", "List the cluster's jobs") { json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var listings = await connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).ListJobs();
            var jobs = await Task.WhenAll(listings.Select(j => connection.Grains.GetGrain<IJobCoordinatorGrain>(j.JobId).GetState()));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(jobs.Select(j => new
                {
                    job_id = j.JobId,
                    name = j.Name,
                    status = j.Status.ToString(),
                    phase = j.Phase?.ToString(),
                    step = j.Step,
                    total_steps = j.TotalSteps,
                    loss = j.LastStep?.Loss,
                    submitted_at = j.SubmittedAt,
                    finished_at = j.FinishedAt,
                    error = j.Error,
                    checkpoint = j.Checkpoints.LastOrDefault(),
                }), JsonOutput.Options));
                return 0;
            }
            var table = new Table().AddColumns("job", "status", "phase", "step", "loss", "submitted", "checkpoint / error");
            foreach (var j in jobs)
                table.AddRow(Markup.Escape(j.JobId), j.Status.ToString(), j.Phase?.ToString() ?? "", $"{j.Step}/{j.TotalSteps}",
                    j.LastStep?.Loss.ToString("F4", CultureInfo.InvariantCulture) ?? "-", j.SubmittedAt.ToLocalTime().ToString("g", CultureInfo.InvariantCulture),
                    Markup.Escape(j.Error ?? j.Checkpoints.LastOrDefault() ?? ""));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    public static Command CreateCancel()
    {
        var job = new Argument<string>("job") { Description = "Job id (moe jobs lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("cancel", "Cancel a job: it stops after the step in progress and writes a checkpoint") { job, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var coordinator = await Find(connection, parse.GetValue(job)!);
            var state = await coordinator.Cancel();
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { job_id = state.JobId, status = state.Status.ToString(), step = state.Step, checkpoint = state.Checkpoints.LastOrDefault() }, JsonOutput.Options));
            else
                Console.WriteLine($"{state.JobId}: {state.Status.ToString().ToLowerInvariant()} at step {state.Step}; checkpoint: {state.Checkpoints.LastOrDefault() ?? "-"}");
            return state.Status == JobStatus.Cancelled || state.Status.IsFinal() ? 0 : 1;
        }));
        return command;
    }

    /// <summary>The coordinator of a job the cluster knows, or <see cref="UnknownJobException"/>.</summary>
    public static async Task<IJobCoordinatorGrain> Find(ClusterConnection connection, string jobId)
    {
        var coordinator = connection.Grains.GetGrain<IJobCoordinatorGrain>(jobId);
        if ((await coordinator.GetState()).Status == JobStatus.Unknown) throw new UnknownJobException(jobId);
        return coordinator;
    }
}
