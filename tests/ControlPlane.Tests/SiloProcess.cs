using System.Collections.Concurrent;
using System.Diagnostics;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// One real silo process: <c>dotnet Orleans.MoE.Silo.dll --Moe:…</c> from src/Silo's build output (the build of this
/// test project builds it: it is a project reference). Its output is kept for failure messages.
/// </summary>
internal sealed class SiloProcess : IDisposable
{
    readonly Process process;
    readonly ConcurrentQueue<string> output = new();

    SiloProcess(Process process, string name)
    {
        this.process = process;
        Name = name;
    }

    public string Name { get; }

    public bool HasExited => process.HasExited;

    /// <summary>src/Silo/bin/CONFIGURATION/net10.0/Orleans.MoE.Silo.dll, for the configuration this test was built in.</summary>
    public static string SiloAssembly()
    {
        // …/tests/ControlPlane.Tests/bin/Debug/net10.0/ → Debug / net10.0
        var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = testOutput.Name, configuration = testOutput.Parent!.Name;
        string path = Path.Combine(TinyConfigs.RepositoryRoot, "src", "Silo", "bin", configuration, framework, "Orleans.MoE.Silo.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("the silo host is not built", path);
    }

    public static SiloProcess Start(string name, IReadOnlyDictionary<string, string> settings) => Launch(name, settings, launcher: []);

    /// <summary>
    /// <paramref name="ranks"/> silos as one <c>mpiexec.mpich</c> launch (Moe:Mpi=true: each rank takes its ports from
    /// the given bases); null when MPICH is not installed.
    /// </summary>
    public static SiloProcess? StartUnderMpiexec(string name, int ranks, IReadOnlyDictionary<string, string> settings)
    {
        string? mpiexec = FindOnPath("mpiexec.mpich");
        if (mpiexec is null) return null;
        // One libtorch thread per rank: the ranks already keep the cores busy.
        return Launch(name, new Dictionary<string, string>(settings) { ["Mpi"] = "true", ["Name"] = name },
            [mpiexec, "-n", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "-env", "OMP_NUM_THREADS", "1"]);
    }

    static SiloProcess Launch(string name, IReadOnlyDictionary<string, string> settings, string[] launcher)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var start = new ProcessStartInfo(launcher.Length > 0 ? launcher[0] : dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(SiloAssembly())!,
        };
        foreach (var argument in launcher.Skip(1)) start.ArgumentList.Add(argument);
        if (launcher.Length > 0) start.ArgumentList.Add(dotnet);
        start.ArgumentList.Add(SiloAssembly());
        if (!settings.ContainsKey("Name")) start.ArgumentList.Add($"--Moe:Name={name}");
        foreach (var (key, value) in settings) start.ArgumentList.Add($"--Moe:{key}={value}");
        // Several silos and a test share two cores: workstation GC, no tiered-compilation surprises in logs.
        start.Environment["DOTNET_gcServer"] = "0";
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var silo = new SiloProcess(process, name);
        process.OutputDataReceived += (_, e) => silo.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => silo.Keep(e.Data);
        if (!process.Start()) throw new InvalidOperationException($"cannot start silo {name}");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return silo;
    }

    static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    void Keep(string? line)
    {
        if (line is null) return;
        output.Enqueue(line);
        while (output.Count > 200) output.TryDequeue(out _);
    }

    public string OutputTail(int lines = 30) => $"--- {Name}{(process.HasExited ? $" (exited {process.ExitCode})" : "")} ---\n" + string.Join('\n', output.TakeLast(lines));

    /// <summary>Kills the process (SIGKILL, no graceful shutdown: what survives is what was already in PostgreSQL).</summary>
    public void Kill()
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        process.Dispose();
    }
}
