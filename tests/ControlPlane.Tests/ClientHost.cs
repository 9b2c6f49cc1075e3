using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>An Orleans client host connected to silo processes, stopped when disposed.</summary>
internal sealed class ClientHost(IHost host) : IAsyncDisposable
{
    public IClusterClient Grains => host.Services.GetRequiredService<IClusterClient>();

    public async ValueTask DisposeAsync()
    {
        await host.StopAsync(TimeSpan.FromSeconds(5));
        host.Dispose();
    }
}
