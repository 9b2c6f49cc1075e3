namespace Orleans.MoE.Kernels.Training;

/// <summary>Where a run writes, what it resumes from, and command-line overrides of the config.</summary>
public sealed record TrainingRunOptions
{
    /// <summary>Output folder (checkpoints under <c>checkpoints/</c>).</summary>
    public required string OutputDirectory { get; init; }

    public required string CacheDirectory { get; init; }

    /// <summary>A checkpoint folder to continue from, or null for a fresh start.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Stop after this many optimiser steps in total (null = the config's training.steps).</summary>
    public long? StopAfter { get; init; }

    public string? Device { get; init; }

    /// <summary>
    /// The previous plan generation's state, from its ranks over the data plane (with <see cref="ResumeFrom"/> null):
    /// a run of the next generation of a job that grew or shrank.
    /// </summary>
    public IRunHandoff? Handoff { get; init; }
}
