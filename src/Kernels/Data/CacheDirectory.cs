namespace Orleans.MoE.Kernels.Data;

/// <summary>Finds where downloaded corpora are kept.</summary>
public static class CacheDirectory
{
    /// <summary>Environment variable that overrides the cache location.</summary>
    public const string Variable = "MOE_CACHE";

    /// <summary>The file that marks the repository root.</summary>
    public const string SolutionFileName = "Orleans.MoE.sln";

    /// <summary>
    /// MOE_CACHE if set; otherwise &lt;repo root&gt;/.cache when running from inside the repository;
    /// otherwise ~/.cache/orleans-moe (an installed tool has no repository around it).
    /// </summary>
    public static string Default()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return Path.GetFullPath(fromEnvironment);

        string? repoRoot = FindRepositoryRoot(AppContext.BaseDirectory);
        if (repoRoot is not null) return Path.Combine(repoRoot, ".cache");

        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache", "orleans-moe");
    }

    /// <summary>Walks up from <paramref name="start"/> to the folder holding Orleans.MoE.sln, or null.</summary>
    public static string? FindRepositoryRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, SolutionFileName))) return dir.FullName;
        }
        return null;
    }
}
