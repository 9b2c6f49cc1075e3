using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Silo.Hosting;
using Orleans.Runtime;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// Silo processes on a real PostgreSQL (Debian's package; .ci/run installs it): membership and job records through the
/// Orleans ADO.NET providers and our deploy/postgres scripts.
/// </summary>
public class PostgresClusterTests
{
    const int Silos = 3;
    const int Steps = 6;
    internal static readonly TimeSpan JoinDeadline = TimeSpan.FromSeconds(120);
    static readonly TimeSpan JobDeadline = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task ThreeSiloProcessesJoinThroughPostgresAndAJobRecordSurvivesARestartOfAllSilos()
    {
        string? bin = PostgresServer.FindBinaries();
        if (bin is null) Assert.Skip("PostgreSQL not installed: apt-get install postgresql (.ci/run does)");
        var cancellation = TestContext.Current.CancellationToken;

        await using var server = await PostgresServer.StartAsync(bin, cancellation);
        string database = "moe_test_" + Guid.NewGuid().ToString("N")[..8];
        await server.CreateDatabaseAsync(database, cancellation);
        string connection = server.ConnectionString(database);
        // Applying twice is harmless (silos may all apply on start).
        await PostgresSchema.ApplyAsync(connection, cancellation);
        await PostgresSchema.ApplyAsync(connection, cancellation);
        Assert.Equal(12, await server.ScalarAsync(database, "SELECT count(*) FROM OrleansQuery", cancellation));

        int[] ports = PostgresServer.FreePorts(2 * Silos);
        string cache = CacheDirectory.Default();
        var names = Enumerable.Range(0, Silos).Select(i => $"pg-silo-{i}").ToArray();
        var silos = new List<SiloProcess>();
        void StartSilos()
        {
            for (int i = 0; i < Silos; i++)
            {
                silos.Add(SiloProcess.Start(names[i], new Dictionary<string, string>
                {
                    ["Device"] = "cpu",
                    ["Clustering"] = "postgres",
                    ["Postgres"] = connection,
                    ["SiloPort"] = ports[2 * i].ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["GatewayPort"] = ports[2 * i + 1].ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["HttpPort"] = "-1",
                    ["HeartbeatSeconds"] = "1",
                    ["CacheDirectory"] = cache,
                    // All three apply the (idempotent) schema as they start, together: the advisory lock serialises them.
                    ["ApplySchema"] = "true",
                }));
            }
        }
        void KillSilos()
        {
            foreach (var s in silos) s.Dispose();
            silos.Clear();
        }
        string Diagnostics() => string.Join('\n', silos.Select(s => s.OutputTail())) + "\n--- postgres ---\n" + server.LogTail();

        try
        {
            // (1) Three processes join through PostgreSQL; a job runs to completion.
            StartSilos();
            string jobId;
            JobSnapshot finished;
            var config = TinyConfigs.Load("tiny-pr-moe", steps: Steps);
            await using (var client = await ConnectAsync(connection, silos, Diagnostics, cancellation))
            {
                await client.WaitForSilosAsync(names, JoinDeadline, () => silos.Any(s => s.HasExited), Diagnostics, cancellation);
                var cluster = client.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
                jobId = await cluster.Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 2 });
                var job = client.Grains.GetGrain<IJobCoordinatorGrain>(jobId);
                await JobWatching.UntilFinished(job, JobDeadline);
                finished = await job.GetState();
                Assert.True(finished.Status == JobStatus.Completed, $"job ended {finished.Status}: {finished.Error}\n{Diagnostics()}");
                Assert.Equal(Steps, finished.Step);
                Assert.Equal(Steps, finished.Losses.Count);
                Assert.Contains(finished.LastStep!.Silo, names);
            }
            // The record is in PostgreSQL, not just in a silo's memory.
            Assert.True(await server.ScalarAsync(database, "SELECT count(*) FROM OrleansStorage WHERE PayloadBinary IS NOT NULL", cancellation) >= 2);
            Assert.Equal(Silos, await server.ScalarAsync(database, "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3", cancellation));

            // (2) Every silo dies at once (SIGKILL); three new processes on the same ports read the record back.
            KillSilos();
            StartSilos();
            await using (var client = await ConnectAsync(connection, silos, Diagnostics, cancellation))
            {
                await client.WaitForSilosAsync(names, JoinDeadline, () => silos.Any(s => s.HasExited), Diagnostics, cancellation);
                var state = await client.Grains.GetGrain<IJobCoordinatorGrain>(jobId).GetState();
                Assert.Equal(JobStatus.Completed, state.Status);
                Assert.Equal(Steps, state.Step);
                Assert.Equal(finished.Losses, state.Losses);
                Assert.Equal(finished.SummaryJson, state.SummaryJson);
                Assert.Equal(finished.Checkpoints, state.Checkpoints);
                // So is the cluster's job list.
                var jobs = await client.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).ListJobs();
                Assert.Contains(jobs, j => j.JobId == jobId);
            }
            // The first generation's rows were superseded by the second's (same address and port, newer generation).
            Assert.Equal(Silos, await server.ScalarAsync(database, "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3", cancellation));
            Assert.Equal(2 * Silos, await server.ScalarAsync(database, "SELECT count(*) FROM OrleansMembershipTable", cancellation));
        }
        finally
        {
            KillSilos();
        }
    }

    [Fact]
    public async Task TheGrainStorageQueriesKeepTheEtagContract()
    {
        string? bin = PostgresServer.FindBinaries();
        if (bin is null) Assert.Skip("PostgreSQL not installed: apt-get install postgresql (.ci/run does)");
        var cancellation = TestContext.Current.CancellationToken;
        await using var server = await PostgresServer.StartAsync(bin, cancellation);
        await server.CreateDatabaseAsync("moe_storage", cancellation);
        string connectionString = server.ConnectionString("moe_storage");
        await PostgresSchema.ApplyAsync(connectionString, cancellation);

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellation);
        var queries = new Dictionary<string, string>();
        await using (var read = new NpgsqlCommand("SELECT QueryKey, QueryText FROM OrleansQuery", connection))
        await using (var reader = await read.ExecuteReaderAsync(cancellation))
            while (await reader.ReadAsync(cancellation)) queries[reader.GetString(0)] = reader.GetString(1);

        // What the provider sends for one string-keyed grain (nulls untyped: the worst case for type inference).
        async Task<List<object?[]>> Run(string key, int? version, byte[]? payload = null, string grain = "job-1")
        {
            await using var command = new NpgsqlCommand(queries[key], connection);
            command.Parameters.AddWithValue("GrainIdHash", grain.GetHashCode(StringComparison.Ordinal));
            command.Parameters.AddWithValue("GrainIdN0", 0L);
            command.Parameters.AddWithValue("GrainIdN1", 0L);
            command.Parameters.AddWithValue("GrainTypeHash", 42);
            command.Parameters.AddWithValue("GrainTypeString", "Orleans.MoE.Grains.Jobs.JobCoordinatorGrain");
            command.Parameters.AddWithValue("GrainIdExtensionString", grain);
            command.Parameters.AddWithValue("ServiceId", "orleans-moe");
            if (key != "ReadFromStorageKey") command.Parameters.AddWithValue("GrainStateVersion", (object?)version ?? DBNull.Value);
            if (key == "WriteToStorageKey") command.Parameters.AddWithValue("PayloadBinary", payload!);
            await using var reader = await command.ExecuteReaderAsync(cancellation);
            var rows = new List<object?[]>();
            while (await reader.ReadAsync(cancellation))
            {
                var row = new object?[reader.FieldCount];
                for (int i = 0; i < row.Length; i++) row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                rows.Add(row);
            }
            return rows;
        }

        Assert.Empty(await Run("ReadFromStorageKey", null));
        Assert.Equal(1, (await Run("WriteToStorageKey", null, [1]))[0][0]);
        Assert.Null((await Run("WriteToStorageKey", null, [9]))[0][0]);     // a second first write loses
        Assert.Equal(2, (await Run("WriteToStorageKey", 1, [2]))[0][0]);
        Assert.Equal(1, (await Run("WriteToStorageKey", 1, [9]))[0][0]);    // stale etag: the version it was given
        var row = Assert.Single(await Run("ReadFromStorageKey", null));
        Assert.Equal(new byte[] { 2 }, row[0]);
        Assert.Equal(2, row[1]);
        Assert.Equal(1, (await Run("ClearStorageKey", 1))[0][0]);           // stale etag: the version it was given
        Assert.Equal(3, (await Run("ClearStorageKey", 2))[0][0]);
        row = Assert.Single(await Run("ReadFromStorageKey", null));
        Assert.Null(row[0]);
        Assert.Equal(3, row[1]);
        Assert.Equal(4, (await Run("WriteToStorageKey", 3, [4]))[0][0]);
        Assert.Empty(await Run("ReadFromStorageKey", null, grain: "job-2"));
    }

    internal static Task<ClientHost> ConnectAsync(string connection, List<SiloProcess> silos, Func<string> diagnostics, CancellationToken cancellation) =>
        ClientHost.ConnectAsync(client =>
        {
            client.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = connection;
            });
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = new MoeSiloOptions().ClusterId;
                o.ServiceId = new MoeSiloOptions().ServiceId;
            });
        }, JoinDeadline, () => silos.Any(s => s.HasExited), diagnostics, cancellation);
}
