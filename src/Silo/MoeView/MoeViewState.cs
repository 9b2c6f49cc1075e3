using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Silo.MoeView;

/// <summary>What the MoE view shows, gathered from the cluster grain, the newest jobs' coordinators and the deployments.</summary>
public static class MoeViewState
{
    /// <summary>Jobs shown with details (the newest first).</summary>
    const int JobsShown = 10;

    /// <summary>Points of a loss curve sent to the page (longer runs are thinned evenly).</summary>
    const int CurvePoints = 400;

    public static async Task<object> Gather(IGrainFactory grains)
    {
        var cluster = grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
        var silos = await cluster.GetSilos();
        var listings = (await cluster.ListJobs()).OrderByDescending(j => j.SubmittedAt).Take(JobsShown).ToArray();
        var jobs = await Task.WhenAll(listings.Select(j => grains.GetGrain<IJobCoordinatorGrain>(j.JobId).GetState()));
        var deployments = await Task.WhenAll((await cluster.ListDeployments()).Select(d => grains.GetGrain<IDeploymentGrain>(d).GetState()));
        return new
        {
            generated_at = DateTimeOffset.UtcNow,
            silos = silos.Select(s => new
            {
                silo = s.Health.Silo,
                node = s.Health.Node,
                device = s.Health.Device,
                address = s.Health.Address,
                active = s.Active,
                heartbeat_age_s = double.IsFinite(s.HeartbeatAgeSeconds) ? s.HeartbeatAgeSeconds : (double?)null,
                utilisation = s.Health.Utilisation,
                process_memory_bytes = s.Health.ProcessMemoryBytes,
                device_memory_bytes = s.Health.DeviceMemoryBytes,
                queued_work = s.Health.QueuedWork,
                running_job = s.RunningJob,
                grains = s.Grains,
                dashboard = s.Health.DashboardUrl,
            }),
            deployments = deployments.Select(d => new
            {
                model = d.Spec.Name,
                status = d.Status.ToString(),
                layout = $"{d.Spec.TensorSlicing}×{d.Spec.ExpertParallel}",
                replicas = d.Replicas.Count,
                target_replicas = d.Spec.TargetReplicas,
                silos = d.Silos,
                max_batch = d.Spec.MaxBatch,
                queue_limit = d.Spec.QueueLimit,
                running = d.Loads.Sum(l => l.Running),
                waiting = d.Loads.Sum(l => l.Waiting),
                tokens = d.Loads.Sum(l => l.Tokens),
                refused = d.Loads.Sum(l => l.Refused),
                cancelled = d.Loads.Sum(l => l.Cancelled),
                error = d.Error,
            }),
            jobs = jobs.Select(j => new
            {
                job_id = j.JobId,
                name = j.Name,
                status = j.Status.ToString(),
                phase = j.Phase?.ToString(),
                step = j.Step,
                total_steps = j.TotalSteps,
                error = j.Error,
                loss_curve = Thin(j.Losses),
                step_seconds_by_silo = j.StepSecondsBySilo,
                overhead_fraction = j.OverheadFraction,
                checkpoints = j.Checkpoints,
                plan = j.Plan is { } p ? new { generation = p.Generation, members = p.Members.Select(m => new { m.Silo, m.Rank, m.Node, m.Device }) } : null,
                last = j.LastStep is { } s ? new
                {
                    step = s.Step,
                    loss = s.Loss,
                    tokens_per_second = s.TokensPerSecond,
                    dropped = s.DroppedFraction,
                    balance = s.Balance,
                    silo = s.Silo,
                    layers = s.Layers.Select(l => new { layer = l.Layer, load = l.Load, kept = l.Kept, capacity = l.Capacity, dropped = l.DroppedFraction }),
                } : null,
            }),
        };
    }

    static IEnumerable<double[]> Thin(IReadOnlyList<double> losses)
    {
        int stride = Math.Max(1, (int)Math.Ceiling(losses.Count / (double)CurvePoints));
        for (int i = 0; i < losses.Count; i += stride) yield return [i + 1, losses[i]];
        if (losses.Count > 0 && (losses.Count - 1) % stride != 0) yield return [losses.Count, losses[^1]];
    }
}
