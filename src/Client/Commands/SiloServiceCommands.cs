using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Client.Commands;

/// <summary>
/// <c>moe drain SILO</c> takes a silo out of service (no job gets it again; the jobs on it re-plan without it at their
/// next chunk boundary); <c>moe undrain SILO</c> puts it back (queued and growing jobs, deployments short of replicas).
/// </summary>
internal static class SiloServiceCommands
{
    public static Command Drain() => Create("drain",
        "Take a silo out of service: the jobs on it checkpoint and re-plan without it at their next chunk boundary",
        async (grain, name, json) =>
        {
            var jobs = await grain.Drain(name);
            if (json)
                Console.WriteLine(JsonSerializer.Serialize(new { silo = name, draining = true, jobs }, JsonOutput.Options));
            else
                Console.WriteLine(jobs.Count == 0 ? $"{name}: draining; no job runs on it" : $"{name}: draining; re-planning without it: {string.Join(", ", jobs)}");
        });

    public static Command Undrain() => Create("undrain",
        "Put a drained silo back in service: queued and growing jobs and deployments short of replicas may take it",
        async (grain, name, json) =>
        {
            bool changed = await grain.Undrain(name);
            if (json)
                Console.WriteLine(JsonSerializer.Serialize(new { silo = name, draining = false, changed }, JsonOutput.Options));
            else
                Console.WriteLine(changed ? $"{name}: back in service" : $"{name}: was not drained");
        });

    static Command Create(string verb, string description, Func<IClusterGrain, string, bool, Task> act)
    {
        var silo = new Argument<string>("silo") { Description = "Silo name (moe cluster lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command(verb, description) { silo, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var grain = connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
            string name = parse.GetValue(silo)!;
            if (!(await grain.GetSilos()).Any(s => s.Health.Silo == name))
                throw new ArgumentException($"the cluster has no silo '{name}' (moe cluster lists them)");
            await act(grain, name, parse.GetValue(json));
            return 0;
        }));
        return command;
    }
}
