using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>Follows a job's progress stream to its end (or a step), with a deadline so a hung job fails the test.</summary>
internal static class JobWatching
{
    public static async Task<List<JobEvent>> UntilFinished(IJobCoordinatorGrain job, TimeSpan deadline, Func<JobEvent, Task>? onEvent = null)
    {
        using var timeout = new CancellationTokenSource(deadline);
        var seen = new List<JobEvent>();
        await foreach (var e in job.Watch(0, timeout.Token).WithCancellation(timeout.Token))
        {
            seen.Add(e);
            if (onEvent is not null) await onEvent(e);
            if (e.Kind == JobEventKind.Finished) break;
        }
        return seen;
    }
}
