using System.CommandLine;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe undeploy MODEL</c>: unloads a served model from the running cluster and frees its silos.</summary>
internal static class UndeployCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model name (GET /v1/models lists them)" };
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("undeploy", "Unload a served model and free its silos (requests in flight end \"cancelled\")") { model, json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            string name = parse.GetValue(model)!;
            if (!await connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).Undeploy(name))
                throw new ArgumentException($"no model named '{name}' is deployed");
            Console.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(new { model = name, undeployed = true }, JsonOutput.Options) : $"{name}: undeployed");
            return 0;
        }));
        return command;
    }
}
