using System.Reflection;
using Npgsql;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>
/// The PostgreSQL schema of a cluster with <c>Moe:Clustering=postgres</c>: deploy/postgres/*.sql (the tables and the
/// OrleansQuery rows the Orleans ADO.NET clustering and grain-storage providers read), embedded in this assembly.
/// </summary>
public static class PostgresSchema
{
    const string Prefix = "Orleans.MoE.Silo.Postgres.";

    /// <summary>The scripts' names and text, in the order they apply (01-main.sql first).</summary>
    public static IReadOnlyList<(string Name, string Sql)> Scripts()
    {
        var assembly = typeof(PostgresSchema).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n => (n[Prefix.Length..], Read(assembly, n)))
            .ToArray();
    }

    /// <summary>
    /// Applies every script to the database <paramref name="connectionString"/> names, in one transaction. The scripts
    /// are idempotent (CREATE … IF NOT EXISTS, upserted queries) and a transaction-scoped advisory lock keeps silos that
    /// start together from racing, so this is safe to call on every start.
    /// </summary>
    public static async Task ApplyAsync(string connectionString, CancellationToken cancellation = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(7351026)", connection, transaction))
            await lockCommand.ExecuteNonQueryAsync(cancellation);
        foreach (var (_, sql) in Scripts())
        {
            await using var command = new NpgsqlCommand(sql, connection, transaction);
            await command.ExecuteNonQueryAsync(cancellation);
        }
        await transaction.CommitAsync(cancellation);
    }

    static string Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"resource {name} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
