namespace Orleans.MoE.Grains.Contracts;

/// <summary>
/// The entry for completions of one deployment (key: its model name), a stateless worker on every silo: admits a
/// request to the least-loaded replica whose queue has room, or answers busy, and streams the tokens back.
/// </summary>
public interface IInferenceRouterGrain : IGrainWithStringKey
{
    /// <summary>
    /// Streams a completion from one replica. Throws <see cref="InferenceBusyException"/> when every replica's queue
    /// is full, KeyNotFoundException when no such deployment is ready, ArgumentException for a bad request.
    /// </summary>
    IAsyncEnumerable<CompletionChunk> Complete(CompletionRequest request, CancellationToken cancellation = default);
}
