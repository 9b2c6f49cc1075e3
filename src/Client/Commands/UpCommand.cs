using System.CommandLine;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary><c>moe up</c>: runs a cluster of CPU silos (with dashboards) in the foreground until Ctrl+C.</summary>
internal static class UpCommand
{
    public static Command Create()
    {
        var silos = new Option<int>("--silos") { Description = "How many silos (one per device; here, CPU devices)", DefaultValueFactory = _ => 1 };
        var postgres = new Option<string?>("--postgres") { Description = "Use PostgreSQL membership and job storage (Npgsql connection string; the schema in deploy/postgres/*.sql is applied on start)" };
        var port = new Option<int>("--http-port") { Description = "HTTP port of the first silo's dashboard (others count up)", DefaultValueFactory = _ => 8080 };
        var token = new Option<string?>("--token") { Description = "Require this token for /dashboard and /moe (?token=…)" };
        var mpi = new Option<bool>("--mpi") { Description = "One silo per rank of an mpiexec launch (mpiexec.mpich -n 4 moe up --mpi); jobs on them exchange tensors over MPI" };
        var json = CommonOptions.Json();
        var command = new Command("up", "Start a cluster in the foreground and print the dashboard URL") { silos, postgres, port, token, mpi, json };
        command.SetAction((parse, cancellation) => CommandRunner.RunAsync(parse.GetValue(json), async () =>
        {
            int count = parse.GetValue(silos);
            if (count < 1) throw new ArgumentException("--silos must be at least 1");
            await using var cluster = parse.GetValue(mpi)
                ? await EmbeddedCluster.StartMpiRankAsync(cancellation, parse.GetValue(port), parse.GetValue(token))
                : await EmbeddedCluster.StartAsync(count, web: true, parse.GetValue(postgres), cancellation, parse.GetValue(port), parse.GetValue(token));
            string url = $"http://127.0.0.1:{cluster.Silos[0].HttpPort}";
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    dashboard = url + "/dashboard",
                    moe_view = url + "/moe",
                    gateway = cluster.Silos[0].GatewayPort,
                    silos = cluster.Silos.Select(s => new { name = s.SiloName, silo_port = s.SiloPort, gateway_port = s.GatewayPort, http_port = s.HttpPort }),
                }, JsonOutput.Options));
            }
            else
            {
                AnsiConsole.MarkupLine($"[green]{count} silo(s) up[/] (gateway localhost:{cluster.Silos[0].GatewayPort}). Dashboard: [link]{url}/dashboard[/]  MoE view: [link]{url}/moe[/]");
                AnsiConsole.MarkupLine("Ctrl+C stops the cluster.");
            }
            await ForegroundWait.UntilStopped(cancellation);
            return 0;
        }));
        return command;
    }
}
