namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>A checkpoint directory whose manifest or files do not match: it must not be loaded.</summary>
public sealed class CorruptCheckpointException : Exception
{
    /// <summary>Creates the exception for <paramref name="directory"/>, naming the bad file (if any) and the problem.</summary>
    public CorruptCheckpointException(string directory, string? fileName, string problem, Exception? inner = null)
        : base(fileName is null
            ? $"checkpoint '{directory}' is corrupt: {problem}"
            : $"checkpoint '{directory}' is corrupt: file '{fileName}' {problem}", inner)
    {
        Directory = directory;
        FileName = fileName;
        Problem = problem;
    }

    /// <summary>The checkpoint directory.</summary>
    public string Directory { get; }

    /// <summary>The file that failed verification, or null when the checkpoint as a whole is bad.</summary>
    public string? FileName { get; }

    /// <summary>What is wrong, without the directory and file name.</summary>
    public string Problem { get; }
}
