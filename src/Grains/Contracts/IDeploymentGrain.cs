using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// A serving deployment (key: its model name): places its replicas on the silos the cluster gives it and loads them;
/// replaces lost ones and grows onto new silos when its spec allows.
/// </summary>
public interface IDeploymentGrain : IGrainWithStringKey
{
    /// <summary>Loads a replica on each member; idempotent for the same spec.</summary>
    [ResponseTimeout("00:20:00")]
    Task<DeploymentState> Start(DeploymentSpec spec, IReadOnlyList<PlanMember> members);

    /// <summary>The deployment with its replicas' current load.</summary>
    [AlwaysInterleave]
    Task<DeploymentState> GetState();

    /// <summary>
    /// Cluster membership changed: asks the cluster for its silos again (keeping the live ones, taking free ones up to
    /// its target), loads replicas on new silos and forgets those on lost ones.
    /// </summary>
    Task ClusterChanged();

    /// <summary>Unloads every replica (requests in flight end "cancelled").</summary>
    Task Stop();
}
