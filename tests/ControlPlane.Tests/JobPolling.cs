using Orleans.MoE.Grains.Contracts;
using Orleans.Runtime;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// Reads a job's state until a condition holds. Tests that kill silos use this rather than the watch stream: the
/// coordinator may be on the killed silo, and then a new activation answers from the stored record.
/// </summary>
internal static class JobPolling
{
    /// <param name="diagnostics">What to add to the timeout's message (the silos' output, say).</param>
    public static async Task<JobSnapshot> Until(IGrainFactory grains, string jobId, Func<JobSnapshot, bool> condition, TimeSpan deadline,
        Func<string>? diagnostics = null)
    {
        var job = grains.GetGrain<IJobCoordinatorGrain>(jobId);
        var end = DateTime.UtcNow + deadline;
        JobSnapshot? last = null;
        while (DateTime.UtcNow < end)
        {
            try
            {
                last = await job.GetState();
                if (condition(last)) return last;
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
            {
                // The coordinator's silo was just killed; the next call activates it elsewhere.
            }
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException($"job {jobId} did not get there in {deadline}: {last?.Status} at step {last?.Step}, {last?.Error}\n{string.Join('\n', last?.Notices ?? [])}\n{diagnostics?.Invoke()}");
    }
}
