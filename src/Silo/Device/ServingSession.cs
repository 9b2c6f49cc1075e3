using System.Collections.Concurrent;
using System.Threading.Channels;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Generation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// One replica's model and continuous-batching engine on this silo's device. Callers submit from any thread; the
/// engine is touched only on the device executor, one <see cref="GenerationEngine.Step"/> per work item, so training
/// sessions on the same silo still get their turns between steps. Each request's pieces go out on its own channel.
/// </summary>
public sealed class ServingSession : IAsyncDisposable
{
    readonly DeviceExecutor executor;
    readonly DeploymentSpec spec;
    readonly string silo;
    readonly GptModel model;
    readonly GenerationEngine engine;
    readonly ITextTokenizer tokenizer;
    readonly Lock tokenizing = new();
    readonly ConcurrentQueue<Action> commands = new();
    readonly ConcurrentDictionary<string, Channel<CompletionChunk>> streams = new();
    readonly SemaphoreSlim wake = new(0);
    readonly CancellationTokenSource closing = new();
    readonly Lock admission = new();
    readonly Task pump;

    // Requests taken and not yet finished (running + waiting): the queue bound is checked against it.
    int admitted;
    int mostQueued;
    long tokens;
    long refused;
    long cancelled;

    ServingSession(DeviceExecutor executor, DeploymentSpec spec, string silo, GptModel model, GenerationEngine engine, ITextTokenizer tokenizer)
    {
        this.executor = executor;
        this.spec = spec;
        this.silo = silo;
        this.model = model;
        this.engine = engine;
        this.tokenizer = tokenizer;
        pump = Task.Run(PumpAsync);
    }

    public int ContextLength => engine.ContextLength;

    /// <summary>Loads the checkpoint on the executor and starts the serving loop.</summary>
    public static async Task<ServingSession> OpenAsync(DeviceExecutor executor, DeploymentSpec spec, string silo, string siloDevice)
    {
        var (model, engine, tokenizer) = await executor.RunAsync(() =>
        {
            var saved = ModelCheckpoint.Open(spec.Checkpoint);
            var device = TorchRuntime.ResolveDevice(spec.Device ?? (siloDevice == "auto" ? saved.Config.Device : siloDevice));
            var model = saved.LoadModel(device);
            return (model, new GenerationEngine(model, saved.Tokenizer, device, spec.MaxBatch), saved.Tokenizer);
        });
        return new ServingSession(executor, spec, silo, model, engine, tokenizer);
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
        options.Validate();
        int[] prompt;
        lock (tokenizing) prompt = tokenizer.Encode(request.Prompt);
        if (prompt.Length >= ContextLength)
            throw new ArgumentException($"prompt: {prompt.Length} tokens; the model's context is {ContextLength} tokens, prompt and completion together", "prompt");
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
                engine.Submit(new GenerationRequest(id, prompt, options));
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
                await wake.WaitAsync(closing.Token);
            }
            catch (OperationCanceledException)
            {
                break;
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
            engine.Dispose();
            model.Dispose();
        });
        closing.Dispose();
        wake.Dispose();
    }
}
