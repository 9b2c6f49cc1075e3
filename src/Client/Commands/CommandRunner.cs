using System.Text.Json;
using Orleans.MoE.Client.Cluster;
using Orleans.MoE.Client.Display;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary>Runs a command body and turns the failures users cause into one clear line and exit code 2.</summary>
internal static class CommandRunner
{
    public static int Run(bool json, Func<int> body) => RunAsync(json, () => Task.FromResult(body())).GetAwaiter().GetResult();

    /// <summary>As <see cref="Run"/>; a cluster that cannot be reached is exit code 3.</summary>
    public static async Task<int> RunAsync(bool json, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is ConfigException or FileNotFoundException or DirectoryNotFoundException
                                      or CorruptCheckpointException or ArgumentException or InvalidOperationException or UnknownJobException)
        {
            return Report(json, e, 2);
        }
        catch (ClusterUnreachableException e)
        {
            return Report(json, e, 3);
        }
    }

    static int Report(bool json, Exception e, int code)
    {
        if (json) Console.WriteLine(JsonSerializer.Serialize(new { error = e.Message, kind = e.GetType().Name }, JsonOutput.Options));
        else AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
        // MOE_DEBUG=1 shows where a failure came from.
        if (Environment.GetEnvironmentVariable("MOE_DEBUG") == "1") Console.Error.WriteLine(e);
        return code;
    }
}
