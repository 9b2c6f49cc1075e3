using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// A throwaway PostgreSQL server from Debian's binaries (/usr/lib/postgresql/N/bin): initdb into a temporary directory,
/// trust authentication, listening on 127.0.0.1 at a free port; stopped and deleted on dispose. As root it runs as the
/// postgres user (initdb refuses root).
/// </summary>
internal sealed class PostgresServer : IAsyncDisposable
{
    static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);

    readonly string bin;
    readonly string directory;

    PostgresServer(string bin, string directory, int port)
    {
        this.bin = bin;
        this.directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The newest installed server's bin directory, or null when PostgreSQL is not installed.</summary>
    public static string? FindBinaries() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb")) && File.Exists(Path.Combine(b, "pg_ctl")))
                .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out int v) ? v : 0)
                .FirstOrDefault()
            : null;

    public static async Task<PostgresServer> StartAsync(string bin, CancellationToken cancellation)
    {
        string directory = Path.Combine(Path.GetTempPath(), "moe-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var server = new PostgresServer(bin, directory, FreePort());
        try
        {
            if (IsRoot) await Run("chown", ["postgres:postgres", directory], cancellation);
            await server.Pg("initdb", ["-D", server.DataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], cancellation);
            await server.Pg("pg_ctl", ["-D", server.DataDirectory, "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60",
                "-o", $"-p {server.Port} -k {directory} -h 127.0.0.1 -F", "start"], cancellation);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    string DataDirectory => Path.Combine(directory, "data");

    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Timeout=15;Command Timeout=30";

    public async Task CreateDatabaseAsync(string name, CancellationToken cancellation)
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres"));
        await connection.OpenAsync(cancellation);
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync(cancellation);
    }

    public async Task<long> ScalarAsync(string database, string sql, CancellationToken cancellation)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(database));
        await connection.OpenAsync(cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellation), System.Globalization.CultureInfo.InvariantCulture);
    }

    public string LogTail() =>
        File.Exists(Path.Combine(directory, "server.log")) ? string.Join('\n', File.ReadLines(Path.Combine(directory, "server.log")).TakeLast(20)) : "";

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            if (Directory.Exists(DataDirectory) && File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
                await Pg("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], CancellationToken.None);
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    static bool IsRoot => Environment.UserName == "root";

    Task Pg(string tool, string[] arguments, CancellationToken cancellation) =>
        IsRoot
            ? Run("runuser", ["-u", "postgres", "--", Path.Combine(bin, tool), .. arguments], cancellation)
            : Run(Path.Combine(bin, tool), arguments, cancellation);

    static async Task Run(string file, string[] arguments, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellation);
        var stderr = process.StandardError.ReadToEndAsync(cancellation);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish in {CommandTimeout}");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited {process.ExitCode}: {await stderr}{await stdout}");
    }

    public static int FreePort() => FreePorts(1)[0];

    /// <summary><paramref name="count"/> distinct free loopback ports (all held open until every one is chosen).</summary>
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        try
        {
            foreach (var l in listeners) l.Start();
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var l in listeners) l.Stop();
        }
    }
}
