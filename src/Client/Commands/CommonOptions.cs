using System.CommandLine;

namespace Orleans.MoE.Client.Commands;

/// <summary>Options every command shares.</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print machine-readable JSON (the last line of stdout is the result)" };

    /// <summary>How many silos (ranks) a job runs on: data-parallel replicas whose experts are spread per the config's parallel section.</summary>
    public static Option<int> Ranks() => new("--ranks") { Description = "Silos (ranks) to run the job on; without a cluster, that many silos start in this process (default 1)", DefaultValueFactory = _ => 1 };

    public static Option<string?> Device() => new("--device") { Description = "auto, cpu, cuda or cuda:N (overrides the config)" };
}
