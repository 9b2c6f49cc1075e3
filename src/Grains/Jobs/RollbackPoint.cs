using Orleans.MoE.Kernels.Checkpoints;

namespace Orleans.MoE.Grains.Jobs;

/// <summary>
/// Where a job that lost a silo resumes: the newest checkpoint of its own that verifies (every file against its
/// manifest's SHA-256) and is not past the last step the coordinator recorded. Torn or corrupt ones are skipped,
/// each with the reason, so the job's events say why an older one was used.
/// </summary>
public sealed record RollbackPoint(string? Path, long? Step, IReadOnlyList<string> Skipped)
{
    /// <summary>Scans <paramref name="checkpoints"/> (the job's checkpoints folder; file reads and hashes, no tensors).</summary>
    public static RollbackPoint Find(string checkpoints, long recordedStep)
    {
        var scan = CheckpointDirectory.ListValid(checkpoints);
        // A checkpoint past the recorded step was written inside a chunk whose report never arrived: its steps'
        // losses are not in the record, so resuming there would leave a gap.
        var usable = scan.Valid.LastOrDefault(c => c.Step <= recordedStep);
        var skipped = scan.Skipped
            .Where(s => CheckpointDirectory.StepOf(s.Path) is { } step && step <= recordedStep && step > (usable?.Step ?? -1))
            .Select(s => $"checkpoint {s.Path} is damaged and was skipped: {s.Reason}")
            .ToArray();
        return new RollbackPoint(usable?.Path, usable?.Step, skipped);
    }
}
