using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Jobs;

/// <summary>
/// A coordinator's in-memory progress stream: events in order with a sequence number, and a signal that
/// watchers await for the next one. Used only from the grain's own (single-threaded) context.
/// </summary>
public sealed class JobEventLog
{
    // Enough for a long job's steps; a watcher that falls further behind starts from the oldest kept.
    const int Capacity = 100_000;
    readonly List<JobEvent> events = [];
    TaskCompletionSource changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    long sequence;

    public long LastSequence => sequence;

    /// <summary>
    /// Whether the Finished event is in the log. Watchers end on it, not on the final status: the status is set (and
    /// saved, an await) before the Finished event with the summary is appended, and a watcher must not stop between.
    /// </summary>
    public bool HasFinished { get; private set; }

    public JobEvent Append(JobEventKind kind, JobStatus status, PhaseKind? phase, StepReport? step = null, string? message = null, string? summaryJson = null)
    {
        var e = new JobEvent { Sequence = ++sequence, Kind = kind, Status = status, Phase = phase, Step = step, Message = message, SummaryJson = summaryJson };
        if (events.Count == Capacity) events.RemoveRange(0, Capacity / 10);
        events.Add(e);
        HasFinished |= kind == JobEventKind.Finished;
        var signal = changed;
        changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        signal.TrySetResult();
        return e;
    }

    /// <summary>Events after <paramref name="after"/>, and a task that completes when another is appended.</summary>
    public (IReadOnlyList<JobEvent> Events, Task Next) Since(long after)
    {
        int start = events.FindIndex(e => e.Sequence > after);
        return (start < 0 ? [] : events.GetRange(start, events.Count - start), changed.Task);
    }
}
