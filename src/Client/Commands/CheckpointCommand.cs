using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe checkpoint JOB</c>: a checkpoint of a running job at its next chunk boundary; prints its path.</summary>
internal static class CheckpointCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id (moe jobs lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("checkpoint", "Write a checkpoint of a running job at its next chunk boundary (every rank together); prints its path") { job, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var coordinator = await JobsCommand.Find(connection, parse.GetValue(job)!);
            string path = await coordinator.Checkpoint();
            Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(new { job_id = parse.GetValue(job), checkpoint = path }, JsonOutput.Options) : path);
            return 0;
        }));
        return command;
    }
}
