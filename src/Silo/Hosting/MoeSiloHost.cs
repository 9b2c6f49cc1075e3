using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Dashboard;
using Orleans.Hosting;
using Orleans.MoE.Silo.Inference;
using Orleans.MoE.Silo.MoeView;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>
/// Builds one silo process's host: an Orleans silo for one device, and (unless HttpPort is -1) a web server with the
/// Orleans Dashboard at /dashboard, the MoE view at /moe and the completions API at /v1.
/// </summary>
public static class MoeSiloHost
{
    /// <summary>Reads <see cref="MoeSiloOptions"/> from appsettings.json, MOE__* environment variables and the command line.</summary>
    public static MoeSiloOptions ReadOptions(string[] args, MoeSiloOptions? defaults = null)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables("MOE_SILO__")
            .AddCommandLine(args)
            .Build();
        var options = defaults ?? new MoeSiloOptions();
        configuration.GetSection(MoeSiloOptions.Section).Bind(options);
        return options;
    }

    public static IHost Build(MoeSiloOptions options, string[]? args = null, Action<ILoggingBuilder>? logging = null)
    {
        bool web = options.HttpPort >= 0;
        string? dashboard = web ? $"http://127.0.0.1:{options.HttpPort}/dashboard" : null;
        IHostApplicationBuilder builder = web ? WebApplication.CreateBuilder(args ?? []) : Host.CreateApplicationBuilder(args ?? []);
        builder.Logging.ClearProviders();
        if (logging is not null) logging(builder.Logging);
        else
        {
            // Logs go to stderr: stdout belongs to whoever embeds the silo (the console's --json results).
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning)
                // Start-up advice (server GC) is noise for a console that embeds a silo.
                .AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
            builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        }
        if (web) ((WebApplicationBuilder)builder).WebHost.UseUrls($"http://0.0.0.0:{options.HttpPort}");
        builder.UseOrleans(silo =>
        {
            ConfigureClustering(silo, options);
            silo.AddMoeSilo(options, dashboard);
            if (web) silo.AddDashboard();
        });
        if (!web) return ((HostApplicationBuilder)builder).Build();
        builder.Services.AddSingleton(options);
        var app = ((WebApplicationBuilder)builder).Build();
        app.UseMiddleware<AuthTokenMiddleware>();
        app.MapOrleansDashboard("/dashboard");
        app.MapMoeView("/moe");
        app.MapCompletions();
        app.MapGet("/", () => Microsoft.AspNetCore.Http.Results.Redirect("/moe"));
        return app;
    }

    static void ConfigureClustering(ISiloBuilder silo, MoeSiloOptions options)
    {
        switch (options.Clustering)
        {
            case "localhost":
                silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, new IPEndPoint(IPAddress.Loopback, options.PrimarySiloPort), options.ServiceId, options.ClusterId);
                break;
            case "postgres":
                silo.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = options.Postgres;
                });
                silo.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = options.ClusterId;
                    o.ServiceId = options.ServiceId;
                });
                silo.ConfigureEndpoints(IPAddress.Loopback, options.SiloPort, options.GatewayPort);
                break;
            default:
                throw new InvalidOperationException($"Moe:Clustering must be 'localhost' or 'postgres', not '{options.Clustering}'");
        }
    }
}
