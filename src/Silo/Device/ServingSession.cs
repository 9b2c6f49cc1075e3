using System.Collections.Concurrent;
using System.Threading.Channels;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// One replica's rank 0 on this silo's device: its model (or slice) and continuous-batching engine. Callers submit from any thread; the
/// engine is touched only on the device executor, one <see cref="GenerationEngine.Step"/> per work item, so training
/// sessions on the same silo still get their turns between steps. Each request's pieces go out on its own channel.
/// </summary>
public sealed class ServingSession : IAsyncDisposable
{
    readonly DeviceExecutor executor;
    readonly DeploymentSpec spec;
    readonly string silo;
    readonly ServingReplicaParts parts;
    readonly GenerationEngine engine;
    readonly ITextTokenizer tokenizer;
    readonly Lock tokenizing = new();
    readonly ConcurrentQueue<Action> commands = new();
    readonly ConcurrentDictionary<string, Channel<CompletionChunk>> streams = new();
    readonly SemaphoreSlim wake = new(0);
    readonly CancellationTokenSource closing = new();
    readonly Lock admission = new();
    readonly Task pump;

    // Well within the data planes' collective timeouts (minutes), which an idle replica's followers wait under.
    static readonly TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(30);

    // Requests taken and not yet finished (running + waiting): the queue bound is checked against it.
    int admitted;
    int mostQueued;
    long tokens;
    long refused;
    long cancelled;

    ServingSession(DeviceExecutor executor, DeploymentSpec spec, string silo, ServingReplicaParts parts, GenerationEngine engine)
    {
        this.executor = executor;
        this.spec = spec;
        this.silo = silo;
        this.parts = parts;
        this.engine = engine;
        tokenizer = parts.Tokenizer;
        pump = Task.Run(PumpAsync);
    }

    public int ContextLength => engine.ContextLength;

    /// <summary>
    /// Loads the replica's rank 0 part on the executor (the whole model, or its slice with the other ranks joining
    /// the same replica) and starts the serving loop.
    /// </summary>
    public static async Task<ServingSession> OpenAsync(DeviceExecutor executor, DeploymentSpec spec, ServingRole role, string silo, string siloDevice)
    {
        var (parts, engine) = await executor.RunAsync(() =>
        {
            var parts = ServingReplicaParts.Build(spec, role, siloDevice);
            var engine = parts.Rank is { } rank
                ? new GenerationEngine(new ReplicaBatchForward(rank), parts.Tokenizer, spec.MaxBatch)
                : new GenerationEngine(parts.Model, parts.Tokenizer, parts.Device, spec.MaxBatch);
            return (parts, engine);
        });
        return new ServingSession(executor, spec, silo, parts, engine);
    }

    public ChannelReader<CompletionChunk> Submit(string id, CompletionRequest request)
    {
        var options = new SamplingOptions
        {
            MaxTokens = request.MaxTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            Seed = request.Seed ?? Random.Shared.NextInt64(),
            Stop = request.Stop,
        };
        int[] prompt;
        lock (tokenizing) prompt = tokenizer.Encode(request.Prompt);
        var generation = new GenerationRequest(id, prompt, options);
        // Refused here, on the caller's thread, rather than after it was queued for the device.
        engine.Validate(generation);
        lock (admission)
        {
            if (admitted >= spec.MaxBatch + spec.QueueLimit)
            {
                refused++;
                throw new InferenceBusyException($"replica on {silo} is full: {spec.MaxBatch} requests decoding and {spec.QueueLimit} waiting");
            }
            admitted++;
        }
        var channel = Channel.CreateUnbounded<CompletionChunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        streams[id] = channel;
        Command(() =>
        {
            try
            {
                engine.Submit(generation);
            }
            catch (ArgumentException e)
            {
                Finish(id, e);
            }
        });
        return channel.Reader;
    }

    public void Cancel(string id) => Command(() =>
    {
        if (engine.Cancel(id)) Interlocked.Increment(ref cancelled);
        Finish(id, null);
    });

    public ReplicaLoad Load()
    {
        int running = engine.Running;
        return new ReplicaLoad
        {
            Silo = silo,
            Running = running,
            Waiting = Math.Max(0, Volatile.Read(ref admitted) - running),
            MaxBatch = spec.MaxBatch,
            QueueLimit = spec.QueueLimit,
            Tokens = Interlocked.Read(ref tokens),
            MostQueued = Volatile.Read(ref mostQueued),
            Refused = Interlocked.Read(ref refused),
            Cancelled = Interlocked.Read(ref cancelled),
        };
    }

    void Command(Action command)
    {
        commands.Enqueue(command);
        wake.Release();
    }

    async Task PumpAsync()
    {
        while (!closing.IsCancellationRequested)
        {
            if (await executor.RunAsync(StepOnDevice)) continue;
            try
            {
                if (!await wake.WaitAsync(KeepAliveInterval, closing.Token) && parts.Rank is { } rank)
                    await executor.RunAsync(rank.KeepAlive);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (CommunicatorAbortedException)
            {
                // A rank of the replica is gone: the next request fails with the cause, and the deployment re-forms it.
            }
        }
    }

    /// <summary>Applies queued submissions and cancellations, then runs one engine step; true while work remains.</summary>
    bool StepOnDevice()
    {
        while (commands.TryDequeue(out var command)) command();
        // Waiting requests that a free slot will take in this step are not queued; the rest are.
        int queued = Math.Max(0, engine.Waiting - (engine.MaxBatch - engine.Running));
        if (queued > mostQueued) Volatile.Write(ref mostQueued, queued);
        if (!engine.HasWork) return !commands.IsEmpty;
        try
        {
            foreach (var e in engine.Step()) Deliver(e);
        }
        catch (Exception e)
        {
            // A failed step ends every request it held (their callers get the error); the session keeps serving.
            foreach (var id in streams.Keys)
            {
                engine.Cancel(id);
                Finish(id, e);
            }
        }
        return engine.HasWork || !commands.IsEmpty;
    }

    void Deliver(GenerationEvent e)
    {
        if (!streams.TryGetValue(e.RequestId, out var channel)) return;
        if (e.Token is not null) Interlocked.Increment(ref tokens);
        if (e.Text.Length == 0 && e.Finish is null) return;
        channel.Writer.TryWrite(new CompletionChunk
        {
            Text = e.Text,
            FinishReason = e.Finish?.ToString().ToLowerInvariant(),
            PromptTokens = e.PromptTokens,
            CompletionTokens = e.CompletionTokens,
        });
        if (e.Finish is not null) Finish(e.RequestId, null);
    }

    void Finish(string id, Exception? error)
    {
        if (!streams.TryRemove(id, out var channel)) return;
        channel.Writer.TryComplete(error);
        lock (admission) admitted--;
    }

    public async ValueTask DisposeAsync()
    {
        closing.Cancel();
        await pump;
        await executor.RunAsync(() =>
        {
            foreach (var id in streams.Keys)
            {
                if (streams.TryGetValue(id, out var channel))
                    channel.Writer.TryWrite(new CompletionChunk { FinishReason = nameof(FinishReason.Cancelled).ToLowerInvariant() });
                Finish(id, null);
            }
            try
            {
                // A replica of several silos tells its other ranks to stop here; one of them may be gone already.
                engine.Dispose();
            }
            catch (CommunicatorAbortedException)
            {
            }
            parts.Dispose();
        });
        closing.Dispose();
        wake.Dispose();
    }
}
