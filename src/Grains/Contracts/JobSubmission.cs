namespace Orleans.MoE.Grains.Contracts;

/// <summary>What a client asks the cluster to run: a validated config and where the run writes.</summary>
[GenerateSerializer, Immutable]
public sealed record JobSubmission
{
    /// <summary>The job config as JSON (JobConfig.ToJson()); the coordinator parses and validates it again.</summary>
    [Id(0)] public required string ConfigJson { get; init; }

    /// <summary>Output folder on the silo's machine (checkpoints under checkpoints/); null = runs/NAME under the silo's repository.</summary>
    [Id(1)] public string? OutputDirectory { get; init; }

    /// <summary>A checkpoint folder to continue from.</summary>
    [Id(2)] public string? ResumeFrom { get; init; }

    /// <summary>Stop (and checkpoint) after this many steps, keeping the schedule.</summary>
    [Id(3)] public long? StopAfter { get; init; }

    /// <summary>Device override ("cpu", "cuda", …); null = the silo's device.</summary>
    [Id(4)] public string? Device { get; init; }

    /// <summary>Steps per chunk the coordinator asks a replica for; 0 = sized from the measured step time.</summary>
    [Id(5)] public int ChunkSteps { get; init; }

    /// <summary>How many replicas (silos) the job starts with.</summary>
    [Id(6)] public int Replicas { get; init; } = 1;

    /// <summary>What the job does when silos join, leave or are drained while it runs.</summary>
    [Id(7)] public ScalingPolicy Scaling { get; init; } = ScalingPolicy.Fixed;
}
