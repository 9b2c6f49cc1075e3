using System.Text.Json;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Spectre.Console;

namespace Orleans.MoE.Client.Commands;

/// <summary>Runs a command body and turns the failures users cause into one clear line and exit code 2.</summary>
internal static class CommandRunner
{
    public static int Run(bool json, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is ConfigException or FileNotFoundException or DirectoryNotFoundException
                                      or CorruptCheckpointException or ArgumentException or InvalidOperationException)
        {
            if (json) Console.WriteLine(JsonSerializer.Serialize(new { error = e.Message, kind = e.GetType().Name }));
            else AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            // MOE_DEBUG=1 shows where a failure came from.
            if (Environment.GetEnvironmentVariable("MOE_DEBUG") == "1") Console.Error.WriteLine(e);
            return 2;
        }
    }
}
