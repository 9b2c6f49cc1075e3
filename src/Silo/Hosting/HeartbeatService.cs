using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;
using Orleans.MoE.Silo.Device;
using Orleans.Runtime;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>Tells the cluster grain, every few seconds, how this silo and its device are doing.</summary>
public sealed partial class HeartbeatService(
    IGrainFactory grains, DeviceExecutor executor, SiloIdentity silo, ILocalSiloDetails local, HeartbeatSettings settings, ILogger<HeartbeatService> log)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long lastBusy = executor.BusyTicks, lastAt = Stopwatch.GetTimestamp();
        using var timer = new PeriodicTimer(settings.Interval);
        do
        {
            long busy = executor.BusyTicks, at = Stopwatch.GetTimestamp();
            double utilisation = at == lastAt ? 0 : Math.Clamp((double)(busy - lastBusy) / (at - lastAt), 0, 1);
            (lastBusy, lastAt) = (busy, at);
            try
            {
                using var process = Process.GetCurrentProcess();
                await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).Heartbeat(new SiloHealth
                {
                    Silo = silo.Name,
                    Address = local.SiloAddress.ToString(),
                    Node = silo.Node,
                    Device = silo.Device,
                    DeviceMemoryBytes = silo.DeviceMemoryBytes,
                    ProcessMemoryBytes = process.WorkingSet64,
                    Utilisation = utilisation,
                    QueuedWork = executor.Queued,
                    At = DateTimeOffset.UtcNow,
                    DashboardUrl = settings.DashboardUrl,
                });
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The cluster grain may be moving (its silo left); the next beat tries again.
                LogHeartbeatFailed(log, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heartbeat failed: {Reason}")]
    static partial void LogHeartbeatFailed(ILogger logger, string reason);
}

/// <summary>How often a silo beats and where its dashboard is.</summary>
public sealed record HeartbeatSettings(TimeSpan Interval, string? DashboardUrl);
