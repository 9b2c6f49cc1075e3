using Orleans.Concurrency;

namespace Orleans.MoE.Grains.Contracts;

/// <summary>A serving deployment (key: its model name): places its replicas on the silos the cluster gave it and loads them.</summary>
public interface IDeploymentGrain : IGrainWithStringKey
{
    /// <summary>Loads a replica on each member; idempotent for the same spec.</summary>
    [ResponseTimeout("00:20:00")]
    Task<DeploymentState> Start(DeploymentSpec spec, IReadOnlyList<PlanMember> members);

    /// <summary>The deployment with its replicas' current load.</summary>
    [AlwaysInterleave]
    Task<DeploymentState> GetState();

    /// <summary>Unloads every replica (requests in flight end "cancelled").</summary>
    Task Stop();
}
