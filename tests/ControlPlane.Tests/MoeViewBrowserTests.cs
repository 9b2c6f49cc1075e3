using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Playwright;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>The silo's web pages in a real browser: Debian's Chromium driven headless by Playwright.</summary>
public class MoeViewBrowserTests
{
    const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task TheMoeViewShowsAJobsLossCurveAndExpertHeatmapInHeadlessChromium()
    {
        Assert.SkipUnless(File.Exists(Chromium), $"{Chromium} is not installed (Debian: apt-get install chromium; .ci/run installs it)");
        int http = FreePort(), silo = FreePort();
        var options = new MoeSiloOptions { Name = "browser-silo", Device = "cpu", SiloPort = silo, PrimarySiloPort = silo, GatewayPort = FreePort(), HttpPort = http, HeartbeatSeconds = 1, AuthToken = "s3cret" };
        using var host = MoeSiloHost.Build(options);
        await host.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            var config = TinyConfigs.Load("tiny-pr-moe", steps: 12);
            string jobId = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key)
                .Submit(new JobSubmission { ConfigJson = config.ToJson(), OutputDirectory = TinyConfigs.TempDirectory(), ChunkSteps = 4 });
            await JobWatching.UntilFinished(grains.GetGrain<IJobCoordinatorGrain>(jobId), TimeSpan.FromMinutes(3));

            using var http401 = new HttpClient();
            Assert.Equal(HttpStatusCode.Unauthorized, (await http401.GetAsync($"http://127.0.0.1:{http}/moe", TestContext.Current.CancellationToken)).StatusCode);

            using var playwright = await Playwright.CreateAsync();
            await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = Chromium,
                Headless = true,
                Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
            });
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 900 } });
            await page.GotoAsync($"http://127.0.0.1:{http}/moe?token=s3cret");
            await page.WaitForSelectorAsync("td.status-Completed", new PageWaitForSelectorOptions { Timeout = 30_000 });
            await page.WaitForSelectorAsync(".heat td[title]");
            Assert.Contains(jobId, await page.InnerTextAsync("#jobs"));
            Assert.Contains("browser-silo", await page.InnerTextAsync("#silos"));
            Assert.Equal(1, await page.Locator("svg[aria-label='loss curve']").CountAsync());
            // Three MoE layers (1, 3, 5) with 4, 4 and 8 experts.
            Assert.Equal(16, await page.Locator(".heat td[title]").CountAsync());
            string screenshot = Path.Combine(TinyConfigs.RepositoryRoot, "docs", "dashboard-moe.png");
            Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });

            // The Orleans Dashboard itself is served beside it (the cookie set above lets it through).
            var dashboard = await page.GotoAsync($"http://127.0.0.1:{http}/dashboard/");
            Assert.Equal(200, dashboard!.Status);
        }
        finally
        {
            await host.StopAsync(TimeSpan.FromSeconds(10));
        }
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
