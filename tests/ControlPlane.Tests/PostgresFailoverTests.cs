using System.Diagnostics;
using System.Globalization;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Training;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// A job whose silo process is killed (SIGKILL) on a PostgreSQL cluster of silo processes: the other silos declare it
/// dead, the job rolls back to its newest checkpoint that verifies and finishes on another silo.
/// </summary>
public class PostgresFailoverTests
{
    // Two: the survivor alone declares the other dead (Orleans needs at most half the active silos' votes).
    const int Silos = 2;
    // Long enough that the job cannot finish between the test seeing step 5 and the kill, even on starved cores.
    const int Steps = 16;
    static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task KillingTheSiloProcessOfAJobRollsBackPastDamagedCheckpointsAndFinishesOnAnotherSilo()
    {
        string? bin = PostgresServer.FindBinaries();
        if (bin is null) Assert.Skip("PostgreSQL not installed: apt-get install postgresql (.ci/run does)");
        var cancellation = TestContext.Current.CancellationToken;
        await using var server = await PostgresServer.StartAsync(bin, cancellation);
        string database = "moe_failover_" + Guid.NewGuid().ToString("N")[..8];
        await server.CreateDatabaseAsync(database, cancellation);
        string connection = server.ConnectionString(database);
        await PostgresSchema.ApplyAsync(connection, cancellation);

        var tiny = TinyConfigs.Load("tiny-pr-moe", steps: Steps);
        var config = tiny with { Training = tiny.Training with { CheckpointInterval = 2 } };
        List<double> expected;
        using (var run = TrainingRun.Create(config, TinyConfigs.Options(TinyConfigs.TempDirectory())))
            expected = run.Run(null, CancellationToken.None).Losses.ToList();

        int[] ports = PostgresServer.FreePorts(2 * Silos);
        var names = Enumerable.Range(0, Silos).Select(i => $"failover-{i}").ToArray();
        var silos = names.Select((name, i) => SiloProcess.Start(name, new Dictionary<string, string>
        {
            ["Device"] = "cpu",
            ["Clustering"] = "postgres",
            ["Postgres"] = connection,
            ["SiloPort"] = ports[2 * i].ToString(CultureInfo.InvariantCulture),
            ["GatewayPort"] = ports[2 * i + 1].ToString(CultureInfo.InvariantCulture),
            ["HttpPort"] = "-1",
            ["HeartbeatSeconds"] = "1",
            // Declared dead after three missed one-second probes instead of Orleans' default 5 s each.
            ["ProbeTimeoutSeconds"] = "1",
            ["CacheDirectory"] = CacheDirectory.Default(),
        })).ToList();
        string Diagnostics() => string.Join('\n', silos.Select(s => s.OutputTail())) + "\n--- postgres ---\n" + server.LogTail();
        try
        {
            await using var client = await PostgresClusterTests.ConnectAsync(connection, silos, Diagnostics, cancellation);
            await client.WaitForSilosAsync(names, PostgresClusterTests.JoinDeadline, () => silos.Any(s => s.HasExited), Diagnostics, cancellation);
            string output = TinyConfigs.TempDirectory();
            string jobId = await client.Grains.GetGrain<IClusterGrain>(IClusterGrain.Key)
                .Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = output, ChunkSteps = 2 });
            var running = await JobPolling.Until(client.Grains, jobId, s => s.Status == JobStatus.Running && s.Step >= 5, Deadline, Diagnostics);
            string victim = running.Plan!.Members[0].Silo;

            var killed = Stopwatch.StartNew();
            silos.Single(s => s.Name == victim).Kill();
            // Damage every checkpoint after step 2 (the dead process cannot write any more): one flipped byte each.
            foreach (var c in CheckpointDirectory.ListValid(Path.Combine(output, "checkpoints")).Valid.Where(c => c.Step > 2))
            {
                string dense = Path.Combine(c.Path, "dense.safetensors");
                var bytes = File.ReadAllBytes(dense);
                bytes[^1] ^= 0x55;
                File.WriteAllBytes(dense, bytes);
            }
            var resumed = await JobPolling.Until(client.Grains, jobId, s => s.GenerationChanges.Count > 0 || s.Status.IsFinal(), Deadline, Diagnostics);
            var recovered = killed.Elapsed;
            var state = await JobPolling.Until(client.Grains, jobId, s => s.Status.IsFinal(), Deadline, Diagnostics);

            Assert.True(state.Status == JobStatus.Completed, $"job ended {state.Status}: {state.Error}\n{string.Join('\n', state.Notices)}\n{Diagnostics()}");
            string story = $"{string.Join('\n', state.Notices)}\n{Diagnostics()}";
            Assert.True(state.GenerationChanges.Count == 1, $"generation changes: {state.GenerationChanges.Count}, plan generation {state.Plan!.Generation}\n{story}");
            var change = state.GenerationChanges[0];
            Assert.Contains($"lost silo {victim}", change.Reason);
            Assert.Equal(2, change.ResumedAtStep);
            Assert.EndsWith(CheckpointDirectory.StepName(2), change.Checkpoint);
            Assert.Contains(state.Notices, n => n.Contains(CheckpointDirectory.StepName(4)) && n.Contains("damaged") && n.Contains("SHA-256"));
            Assert.NotEqual(victim, state.Plan!.Members[0].Silo);
            // Every step once, as in one process: one rank in another process does the same arithmetic, and
            // libtorch's CPU kernels give the same sums for the same thread count, so only rounding could differ.
            Assert.Equal(expected.Count, state.Losses.Count);
            for (int i = 0; i < expected.Count; i++)
                Assert.True(Math.Abs(state.Losses[i] - expected[i]) < 1e-4, $"step {i + 1}: {state.Losses[i]:F6} vs {expected[i]:F6} in one process");
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"SIGKILL of {victim} after step {running.Step}: rolled back {change.StepsRolledBack} steps to step {change.ResumedAtStep} " +
                $"(damaged checkpoints skipped); stepping on {state.Plan.Members[0].Silo} {recovered.TotalSeconds:F2} s after the kill, " +
                $"{change.SecondsUntilStepping:F2} s after the coordinator noticed");
        }
        finally
        {
            foreach (var s in silos) s.Dispose();
        }
    }
}
