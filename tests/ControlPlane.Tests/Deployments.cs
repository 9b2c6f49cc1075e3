using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>Deploying in tests, where the silos have only just started.</summary>
internal static class Deployments
{
    /// <summary>Deploys as soon as enough silos are assignable (a silo becomes so with its first heartbeat).</summary>
    public static async Task DeployWhenSilosAreReady(IGrainFactory grains, DeploymentSpec spec, TimeSpan patience)
    {
        var until = DateTime.UtcNow + patience;
        while (true)
        {
            try
            {
                await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).Deploy(spec);
                return;
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < until)
            {
                await Task.Delay(250);
            }
        }
    }
}
