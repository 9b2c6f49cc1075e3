using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe undrain SILO</c>: a drained silo takes work again (queued jobs, growing jobs, deployments short of replicas).</summary>
internal static class UndrainCommand
{
    public static Command Create()
    {
        var silo = new Argument<string>("silo") { Description = "Silo name (moe cluster lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("undrain", "Put a drained silo back in service: queued and growing jobs and deployments short of replicas may take it") { silo, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var grain = connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
            string name = parse.GetValue(silo)!;
            if (!(await grain.GetSilos()).Any(s => s.Health.Silo == name))
                throw new ArgumentException($"the cluster has no silo '{name}' (moe cluster lists them)");
            bool changed = await grain.Undrain(name);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { silo = name, draining = false, changed }, JsonOutput.Options));
            else
                Console.WriteLine(changed ? $"{name}: back in service" : $"{name}: was not drained");
            return 0;
        }));
        return command;
    }
}
