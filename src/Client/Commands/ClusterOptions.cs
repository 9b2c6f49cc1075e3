using System.CommandLine;
using Orleans.MoE.Client.Cluster;

namespace Orleans.MoE.Client.Commands;

/// <summary>The options that say where the cluster is (commands that talk to one).</summary>
internal sealed class ClusterOptions
{
    public Option<int> Gateway { get; } = new("--gateway") { Description = "Gateway port of a localhost cluster", DefaultValueFactory = _ => ClusterAddress.DefaultGatewayPort };
    public Option<string?> Postgres { get; } = new("--postgres") { Description = "Npgsql connection string of a PostgreSQL-membership cluster" };

    public void AddTo(Command command)
    {
        command.Options.Add(Gateway);
        command.Options.Add(Postgres);
    }

    public ClusterAddress Read(ParseResult parse) => new(parse.GetValue(Gateway), parse.GetValue(Postgres));
}
