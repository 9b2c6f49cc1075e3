using System.Runtime.CompilerServices;
using Orleans.Concurrency;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Placement;

namespace Orleans.MoE.Grains.Serving;

/// <summary>
/// A deployment's request router, one activation per silo. It sends each request to the replica with the fewest
/// requests in flight (its own count, then the replicas' reported load), moves on to the next when a replica's
/// queue is full or the replica is gone, and answers busy only when all are full: the replicas enforce the queue
/// bound, so it holds however many routers there are. A request whose replica is lost mid-way fails as retryable.
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
        Exception? lost = null;
        foreach (string key in (await Replicas(name)).OrderBy(k => inFlight.GetValueOrDefault(k)).ThenBy(k => reportedLoad.GetValueOrDefault(k)))
        {
            var candidate = GrainFactory.GetGrain<IServingReplicaGrain>(key).Generate(request, cancellation).GetAsyncEnumerator(cancellation);
            // Counted before the stream starts, so that requests arriving meanwhile see this one and go elsewhere.
            inFlight[key] = inFlight.GetValueOrDefault(key) + 1;
            try
            {
                // The replica admits (or refuses) the request when the stream starts.
                first = await candidate.MoveNextAsync();
                (stream, chosen) = (candidate, key);
                break;
            }
            catch (InferenceBusyException)
            {
                inFlight[key]--;
                await candidate.DisposeAsync();
            }
            catch (Exception e) when (e is not ArgumentException and not OperationCanceledException)
            {
                // The replica's silo is gone or its session closed: the next replica takes the request, and the
                // list is read again for the next one.
                inFlight[key]--;
                lost = e;
                listedAt = DateTime.MinValue;
                await DisposeQuietly(candidate);
            }
            catch
            {
                // A bad request or a cancelled caller: the same on every replica, so it ends here.
                inFlight[key]--;
                await DisposeQuietly(candidate);
                throw;
            }
        }
        if (stream is null || chosen is null)
        {
            if (lost is not null) throw new InferenceUnavailableException($"no replica of '{name}' could take the request ({lost.GetType().Name}: {lost.Message}); retry", lost);
            throw new InferenceBusyException($"every replica of '{name}' has a full queue; retry later");
        }
        try
        {
            if (!first) yield break;
            yield return stream.Current;
            while (await stream.MoveNextAsync()) yield return stream.Current;
        }
        finally
        {
            inFlight[chosen]--;
            await DisposeQuietly(stream);
        }
    }

    static async Task DisposeQuietly(IAsyncEnumerator<CompletionChunk> stream)
    {
        try
        {
            await stream.DisposeAsync();
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
        {
            // Disposing a stream whose replica is gone can fail the same way; there is nothing left to release.
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
        foreach (string key in state.Replicas)
            reportedLoad[key] = state.Loads.FirstOrDefault(l => l.Silo == PlanKey.SiloOf(key)) is { } load ? load.Running + load.Waiting : int.MaxValue;
        listedAt = DateTime.UtcNow;
        return replicas;
    }
}
