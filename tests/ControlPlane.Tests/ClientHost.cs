using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.MoE.Grains.Contracts;
using Orleans.Runtime;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>An Orleans client host connected to silo processes, stopped when disposed.</summary>
internal sealed class ClientHost(IHost host) : IAsyncDisposable
{
    public IClusterClient Grains => host.Services.GetRequiredService<IClusterClient>();

    /// <summary>
    /// Connects with <paramref name="clustering"/>, retrying while the silos start (they may take a while on two
    /// cores), until <paramref name="deadline"/> or until <paramref name="gaveUp"/> says the silos died.
    /// </summary>
    public static async Task<ClientHost> ConnectAsync(Action<IClientBuilder> clustering, TimeSpan deadline, Func<bool> gaveUp, Func<string> diagnostics, CancellationToken cancellation)
    {
        var until = DateTime.UtcNow + deadline;
        while (true)
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.UseOrleansClient(clustering);
            var host = builder.Build();
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(TimeSpan.FromSeconds(30));
                await host.StartAsync(timeout.Token);
                return new ClientHost(host);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellation.IsCancellationRequested)
            {
                host.Dispose();
                if (DateTime.UtcNow > until || gaveUp())
                    throw new TimeoutException($"no client connection to the silos: {e.Message}\n{diagnostics()}", e);
                await Task.Delay(1000, cancellation);
            }
        }
    }

    /// <summary>
    /// Waits until Orleans membership has exactly the silos named and each has reported its device to the cluster
    /// grain; fails the test with what it last saw when <paramref name="deadline"/> passes or the silos die.
    /// </summary>
    public async Task WaitForSilosAsync(string[] names, TimeSpan deadline, Func<bool> gaveUp, Func<string> diagnostics, CancellationToken cancellation)
    {
        var until = DateTime.UtcNow + deadline;
        string last = "";
        while (DateTime.UtcNow < until && !gaveUp())
        {
            try
            {
                var hosts = await Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
                var reported = (await Grains.GetGrain<IClusterGrain>(IClusterGrain.Key).GetSilos()).Where(s => s.Active).Select(s => s.Health.Silo).ToHashSet();
                last = $"{hosts.Count} active in membership; cluster grain sees [{string.Join(", ", reported)}]";
                if (hosts.Count == names.Length && names.All(reported.Contains)) return;
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
            {
                last = e.Message;
            }
            await Task.Delay(1000, cancellation);
        }
        Assert.Fail($"the {names.Length} silos did not all join ({last})\n{diagnostics()}");
    }

    public async ValueTask DisposeAsync()
    {
        await host.StopAsync(TimeSpan.FromSeconds(5));
        host.Dispose();
    }
}
