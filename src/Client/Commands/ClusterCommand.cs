using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Grains.Contracts;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe cluster</c>: silos, their devices and health, what runs where, grains per silo.</summary>
internal static class ClusterCommand
{
    public static Command Create()
    {
        var json = CommonOptions.Json();
        var cluster = new ClusterOptions();
        var command = new Command("cluster", "Show the cluster's silos, devices, health and grains") { json };
        cluster.AddTo(command);
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            await using var connection = await ClusterConnection.ConnectAsync(cluster.Read(parse), cancellation);
            var silos = await connection.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).GetSilos();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(silos.Select(s => new
                {
                    silo = s.Health.Silo,
                    address = s.Health.Address,
                    node = s.Health.Node,
                    device = s.Health.Device,
                    active = s.Active,
                    draining = s.Draining,
                    device_memory_bytes = s.Health.DeviceMemoryBytes,
                    process_memory_bytes = s.Health.ProcessMemoryBytes,
                    utilisation = s.Health.Utilisation,
                    heartbeat_age_seconds = double.IsFinite(s.HeartbeatAgeSeconds) ? s.HeartbeatAgeSeconds : (double?)null,
                    running_job = s.RunningJob,
                    grains = s.Grains,
                }), JsonOutput.Options));
                return 0;
            }
            var table = new Table().AddColumns("silo", "node", "device", "memory", "utilisation", "heartbeat", "job", "grains");
            foreach (var s in silos)
                table.AddRow(Markup.Escape(s.Health.Silo) + (s.Active ? "" : " [red](gone)[/]") + (s.Draining ? " [yellow](draining)[/]" : ""), Markup.Escape(s.Health.Node), Markup.Escape(s.Health.Device),
                    string.Create(CultureInfo.InvariantCulture, $"{s.Health.ProcessMemoryBytes / 1048576} / {s.Health.DeviceMemoryBytes / 1048576} MB"),
                    s.Health.Utilisation.ToString("P0", CultureInfo.InvariantCulture),
                    double.IsFinite(s.HeartbeatAgeSeconds) ? string.Create(CultureInfo.InvariantCulture, $"{s.HeartbeatAgeSeconds:F1} s ago") : "never",
                    Markup.Escape(s.RunningJob ?? ""), Markup.Escape(string.Join(", ", s.Grains.Select(g => $"{g.Key} {g.Value}"))));
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
