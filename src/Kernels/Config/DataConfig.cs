namespace Orleans.MoE.Kernels.Config;

/// <summary>Where the training and evaluation text comes from.</summary>
public sealed record DataConfig
{
    /// <summary>"brown" (the Brown corpus, fetched and cached) or "files" (UTF-8 text files).</summary>
    public string Source { get; init; } = "brown";

    public string? TrainFile { get; init; }
    public string? ValidationFile { get; init; }
    public string? TestFile { get; init; }

    internal static readonly string[] Sources = ["brown", "files"];
}
