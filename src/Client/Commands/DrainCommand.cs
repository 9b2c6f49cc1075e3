using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe drain SILO</c>: no job gets the silo again; the jobs on it re-plan without it at their next chunk boundary.</summary>
internal static class DrainCommand
{
    public static Command Create()
    {
        var silo = new Argument<string>("silo") { Description = "Silo name (moe cluster lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("drain", "Take a silo out of service: the jobs on it checkpoint and re-plan without it at their next chunk boundary") { silo, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var grain = connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
            string name = parse.GetValue(silo)!;
            if (!(await grain.GetSilos()).Any(s => s.Health.Silo == name))
                throw new ArgumentException($"the cluster has no silo '{name}' (moe cluster lists them)");
            var jobs = await grain.Drain(name);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { silo = name, draining = true, jobs }, JsonOutput.Options));
            else
                Console.WriteLine(jobs.Count == 0 ? $"{name}: draining; no job runs on it" : $"{name}: draining; re-planning without it: {string.Join(", ", jobs)}");
            return 0;
        }));
        return command;
    }
}
