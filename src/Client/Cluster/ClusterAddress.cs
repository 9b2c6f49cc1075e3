namespace Orleans.MoE.Client.Cluster;

/// <summary>Where the console finds a cluster: a localhost gateway port, or the PostgreSQL membership table.</summary>
public sealed record ClusterAddress(int GatewayPort, string? Postgres)
{
    public const int DefaultGatewayPort = 30000;
    public const string ClusterId = "moe";
    public const string ServiceId = "orleans-moe";

    public override string ToString() => Postgres is null ? $"localhost:{GatewayPort}" : "the PostgreSQL membership table";
}
