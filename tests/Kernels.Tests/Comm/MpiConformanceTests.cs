using System.Diagnostics;
using System.Text.Json;
using Orleans.MoE.CommConformance;

namespace Orleans.MoE.Kernels.Tests.Comm;

/// <summary>
/// The communicator conformance checks on MPICH: four processes under mpiexec.mpich, each running tests/CommRankHost
/// as one rank and printing its results as a JSON line.
/// </summary>
public class MpiConformanceTests
{
    const int Ranks = 4;

    [Fact]
    public void EveryCollectiveConformsOnFourProcesses()
    {
        var folder = Directory.CreateTempSubdirectory("moe-mpi-checks-");
        var run = Launch($"--results \"{folder.FullName}\"", TimeSpan.FromMinutes(3));
        var results = folder.GetFiles("rank-*.json")
            .SelectMany(f => JsonSerializer.Deserialize<List<CheckResult>>(File.ReadAllText(f.FullName))!).ToList();
        folder.Delete(recursive: true);
        Assert.True(results.Count == Ranks * CommunicatorChecks.Names.Count, $"exit {run.ExitCode}; output:\n{run.Output}\n{run.Error}");
        ConformanceAssert.AllPassed(results, Ranks);
        Assert.Equal(0, run.ExitCode);
    }

    [Fact]
    public void OneFailingRankEndsTheWholeJobQuickly()
    {
        var clock = Stopwatch.StartNew();
        var run = Launch("--abort", TimeSpan.FromSeconds(90));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("aborted the job", run.Error);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the job took {clock.Elapsed.TotalSeconds:0} s to end");
    }

    static (int ExitCode, string Output, string Error) Launch(string arguments, TimeSpan timeout)
    {
        var mpiexec = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, "mpiexec.mpich")).FirstOrDefault(File.Exists);
        if (mpiexec is null) Assert.Skip("MPICH is not installed: apt-get install mpich");
        var start = new ProcessStartInfo(mpiexec, $"-n {Ranks} dotnet \"{RankHostPath()}\" {arguments}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mpiexec did not finish within {timeout.TotalSeconds:0} s (a rank hangs)");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    /// <summary>CommRankHost's own output folder (same configuration and framework as this test assembly).</summary>
    static string RankHostPath()
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string framework = output.Name, configuration = output.Parent!.Name;
        var root = output;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Orleans.MoE.sln"))) root = root.Parent;
        Assert.NotNull(root);
        string path = Path.Combine(root.FullName, "tests", "CommRankHost", "bin", configuration, framework, "CommRankHost.dll");
        Assert.True(File.Exists(path), $"{path} is missing: build tests/CommRankHost");
        return path;
    }
}
