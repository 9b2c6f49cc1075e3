using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Client.Commands;

/// <summary>Default folders: the data cache and where runs write.</summary>
internal static class Paths
{
    public static string Cache => CacheDirectory.Default();

    /// <summary>runs/NAME under the repository (or the current folder outside one).</summary>
    public static string RunDirectory(string name) =>
        Path.Combine(CacheDirectory.FindRepositoryRoot(AppContext.BaseDirectory) ?? Directory.GetCurrentDirectory(), "runs", name);
}
