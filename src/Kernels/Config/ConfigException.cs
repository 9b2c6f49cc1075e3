namespace Orleans.MoE.Kernels.Config;

/// <summary>A job configuration that cannot run, with the offending field (and file, when known) named.</summary>
public sealed class ConfigException(string field, string problem, string? file = null)
    : Exception((file is null ? "" : $"{file}: ") + $"config field '{field}': {problem}")
{
    /// <summary>The dotted path of the field, e.g. <c>moe.top_k</c>.</summary>
    public string Field { get; } = field;

    public string Problem { get; } = problem;

    public string? File { get; } = file;
}
