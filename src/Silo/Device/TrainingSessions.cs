using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Training;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// The training sessions on this silo's device: one <see cref="TrainingRun"/> per (job, generation, rank), created,
/// stepped, checkpointed and disposed only on the <see cref="DeviceExecutor"/>'s thread.
/// </summary>
public sealed class TrainingSessions(DeviceExecutor executor, SiloIdentity silo, string cacheDirectory) : ITrainingDevice, IDisposable
{
    /// <summary>The options every --json result is printed with (the console prints a summary exactly so).</summary>
    public static readonly JsonSerializerOptions SummaryJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    readonly ConcurrentDictionary<string, TrainingRun> runs = new();

    public async Task<SessionInfo> OpenAsync(ReplicaAssignment assignment, CancellationToken cancellation)
    {
        var run = runs.TryGetValue(assignment.SessionKey, out var open) ? open : await executor.RunAsync(() =>
        {
            var config = JobConfig.Parse(assignment.ConfigJson);
            return TrainingRun.Create(config, new TrainingRunOptions
            {
                OutputDirectory = assignment.OutputDirectory,
                CacheDirectory = cacheDirectory,
                ResumeFrom = assignment.ResumeFrom,
                StopAfter = assignment.StopAfter,
                Device = assignment.Device ?? (silo.Device == "auto" ? null : silo.Device),
            });
        }, cancellation);
        if (!runs.TryAdd(assignment.SessionKey, run) && !ReferenceEquals(runs[assignment.SessionKey], run))
            await executor.RunAsync(run.Dispose, CancellationToken.None);
        run = runs[assignment.SessionKey];
        return new SessionInfo(run.Trainer.Step, run.LastStep, run.Device.ToString(), run.Parameters.Total);
    }

    public Task<ChunkRun> RunStepsAsync(string sessionKey, int count, CancellationToken cancellation)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(() =>
        {
            long start = Stopwatch.GetTimestamp();
            var steps = run.RunSteps(count, cancellation).Select(p => StepReports.From(p, silo.Name)).ToArray();
            return new ChunkRun(steps, Stopwatch.GetElapsedTime(start).TotalSeconds);
        });
    }

    public Task<SessionSummary> FinishAsync(string sessionKey)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(() =>
        {
            var summary = run.Finish();
            return new SessionSummary(JsonSerializer.Serialize(summary, SummaryJson), summary.Checkpoint!);
        });
    }

    public Task<string> CheckpointAsync(string sessionKey)
    {
        var run = Get(sessionKey);
        return executor.RunAsync(run.SaveCheckpoint);
    }

    public Task CloseAsync(string sessionKey) =>
        runs.TryRemove(sessionKey, out var run) ? executor.RunAsync(run.Dispose) : Task.CompletedTask;

    /// <summary>Sessions open on this device.</summary>
    public int Count => runs.Count;

    TrainingRun Get(string sessionKey) =>
        runs.TryGetValue(sessionKey, out var run) ? run : throw new InvalidOperationException($"no training session {sessionKey} on silo {silo.Name}");

    public void Dispose()
    {
        foreach (var key in runs.Keys) CloseAsync(key).Wait(TimeSpan.FromSeconds(30));
    }

    /// <summary>The data cache a silo uses: MOE_CACHE, else the repository's .cache, else ~/.cache/orleans-moe.</summary>
    public static string DefaultCache() => CacheDirectory.Default();
}
