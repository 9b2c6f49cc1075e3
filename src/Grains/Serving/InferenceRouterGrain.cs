using System.Runtime.CompilerServices;
using Orleans.Concurrency;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// A deployment's request router, one activation per silo. It sends each request to the replica with the fewest
/// requests in flight (its own count, then the replicas' reported load), moves on to the next when a replica's
/// queue is full, and answers busy only when all are: the replicas enforce the queue bound, so it holds however many
/// routers there are.
/// </summary>
[StatelessWorker(1)]
[Reentrant]
public sealed class InferenceRouterGrain : Grain, IInferenceRouterGrain
{
    static readonly TimeSpan ReplicaListAge = TimeSpan.FromSeconds(2);

    readonly Dictionary<string, int> inFlight = [];
    readonly Dictionary<string, int> reportedLoad = [];
    IReadOnlyList<string> replicas = [];
    DateTime listedAt = DateTime.MinValue;

    public async IAsyncEnumerable<CompletionChunk> Complete(CompletionRequest request, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        string name = this.GetPrimaryKeyString();
        IAsyncEnumerator<CompletionChunk>? stream = null;
        string? chosen = null;
        bool first = false;
        foreach (string key in (await Replicas(name)).OrderBy(k => inFlight.GetValueOrDefault(k)).ThenBy(k => reportedLoad.GetValueOrDefault(k)))
        {
            var candidate = GrainFactory.GetGrain<IServingReplicaGrain>(key).Generate(request, cancellation).GetAsyncEnumerator(cancellation);
            try
            {
                // The replica admits (or refuses) the request when the stream starts.
                first = await candidate.MoveNextAsync();
                (stream, chosen) = (candidate, key);
                break;
            }
            catch (InferenceBusyException)
            {
                await candidate.DisposeAsync();
            }
        }
        if (stream is null || chosen is null)
            throw new InferenceBusyException($"every replica of '{name}' has a full queue; retry later");
        inFlight[chosen] = inFlight.GetValueOrDefault(chosen) + 1;
        try
        {
            if (!first) yield break;
            yield return stream.Current;
            while (await stream.MoveNextAsync()) yield return stream.Current;
        }
        finally
        {
            inFlight[chosen]--;
            await stream.DisposeAsync();
        }
    }

    async Task<IReadOnlyList<string>> Replicas(string name)
    {
        if (DateTime.UtcNow - listedAt < ReplicaListAge && replicas.Count > 0) return replicas;
        var deployment = GrainFactory.GetGrain<IDeploymentGrain>(name);
        var state = await deployment.GetState();
        if (state.Status != DeploymentStatus.Ready)
            throw new KeyNotFoundException(state.Status == DeploymentStatus.Unknown ? $"no model named '{name}' is deployed" : $"model '{name}' is {state.Status.ToString().ToLowerInvariant()}{(state.Error is null ? "" : ": " + state.Error)}");
        replicas = state.Replicas;
        foreach (var load in state.Loads.Zip(state.Replicas)) reportedLoad[load.Second] = load.First.Running + load.First.Waiting;
        listedAt = DateTime.UtcNow;
        return replicas;
    }
}
