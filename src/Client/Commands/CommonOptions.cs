using System.CommandLine;

namespace Orleans.MoE.Client.Commands;

/// <summary>Options every command shares.</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print machine-readable JSON (the last line of stdout is the result)" };

    public static Option<string?> Device() => new("--device") { Description = "auto, cpu, cuda or cuda:N (overrides the config)" };
}
