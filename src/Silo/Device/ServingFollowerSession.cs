using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Comm;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// A replica's rank other than 0 on this silo: its slice of the model, running every forward rank 0 broadcasts. The
/// loop holds the device executor for as long as the replica serves (the silo belongs to the deployment).
/// </summary>
public sealed class ServingFollowerSession : IAsyncDisposable
{
    static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    readonly DeviceExecutor executor;
    readonly ServingReplicaParts parts;
    readonly Task loop;

    ServingFollowerSession(DeviceExecutor executor, ServingReplicaParts parts)
    {
        this.executor = executor;
        this.parts = parts;
        loop = executor.RunAsync(parts.Rank!.Follow);
    }

    public int ContextLength => parts.Model.Config.ContextLength;

    public static async Task<ServingFollowerSession> OpenAsync(DeviceExecutor executor, DeploymentSpec spec, ServingRole role, string siloDevice) =>
        new(executor, await executor.RunAsync(() => ServingReplicaParts.Build(spec, role, siloDevice)));

    public async ValueTask DisposeAsync()
    {
        // Rank 0 ends the loop when it unloads; if it does not (it is gone), the group is aborted under the loop.
        try
        {
            await loop.WaitAsync(StopGrace);
        }
        catch (TimeoutException)
        {
            parts.Abort(new CommunicatorAbortedException("the serving replica is unloaded"));
        }
        try
        {
            await loop;
        }
        catch (CommunicatorAbortedException)
        {
            // The loop ends this way when the replica was aborted.
        }
        await executor.RunAsync(parts.Dispose);
    }
}
