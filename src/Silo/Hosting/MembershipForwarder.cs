using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Resilience;
using Orleans.Runtime;
using Polly;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>
/// Tells the cluster grain about every Orleans membership version this silo sees (silos joining, being declared
/// dead), so running jobs re-plan without polling. Every silo forwards; the cluster grain acts once per version,
/// so the news arrives even when the silo that hosted the cluster grain is the one that died.
/// </summary>
public sealed partial class MembershipForwarder(
    IClusterMembershipService membership, IGrainFactory grains, ControlPlaneResilience resilience, ILogger<MembershipForwarder> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
        {
            try
            {
                var cluster = grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
                long version = snapshot.Version.Value;
                // Retried: the cluster grain may have been on the silo that was just declared dead.
                await resilience.GrainCalls.ExecuteAsync(async _ => await cluster.MembershipChanged(version), stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The cluster grain may be moving off a dead silo; the other silos forward the same version.
                LogForwardFailed(log, snapshot.Version.Value, e.Message);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell the cluster about membership version {Version}: {Reason}")]
    static partial void LogForwardFailed(ILogger logger, long version, string reason);
}
