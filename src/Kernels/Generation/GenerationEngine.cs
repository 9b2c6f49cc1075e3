using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// Continuous batching on one model: requests wait in a queue, take a KV-cache slot when one is free, are prefilled
/// (those of one prompt length together), then decode together one token per <see cref="Step"/> with every other running request, and leave the
/// batch as soon as they finish, freeing their slot for the next. Each request samples from its own seeded
/// generator and routing never drops tokens, so a request gets the tokens it would get running alone.
/// Not thread-safe: one caller (a serving loop) drives it.
/// </summary>
public sealed class GenerationEngine : IDisposable
{
    readonly IBatchForward forward;
    readonly ITextTokenizer tokenizer;
    readonly ActiveRequest?[] slots;
    readonly LinkedList<GenerationRequest> waiting = new();

    /// <summary>The model in this process (see <see cref="LocalBatchForward"/> for what it does to the model).</summary>
    /// <param name="decode">How decode steps run; null: CUDA graphs on a GPU, eager on a CPU.</param>
    public GenerationEngine(GptModel model, ITextTokenizer tokenizer, Device device, int maxBatch, DecodeMode? decode = null)
        : this(new LocalBatchForward(model, device, CheckedBatch(maxBatch), decode), tokenizer, maxBatch)
    {
    }

    /// <summary>The model behind <paramref name="forward"/>, which the engine owns from here (slots 0 … maxBatch − 1).</summary>
    public GenerationEngine(IBatchForward forward, ITextTokenizer tokenizer, int maxBatch)
    {
        this.forward = forward;
        this.tokenizer = tokenizer;
        slots = new ActiveRequest?[CheckedBatch(maxBatch)];
    }

    static int CheckedBatch(int maxBatch) =>
        maxBatch >= 1 ? maxBatch : throw new ArgumentOutOfRangeException(nameof(maxBatch), $"max batch {maxBatch} must be at least 1");

    public int MaxBatch => slots.Length;
    public int Running => slots.Count(s => s is not null);
    public int Waiting => waiting.Count;
    public bool HasWork => waiting.Count > 0 || Running > 0;
    public int ContextLength => forward.ContextLength;

    /// <summary>Queues a request; throws ArgumentException naming the field when it cannot be served.</summary>
    public void Submit(GenerationRequest request)
    {
        Validate(request);
        if (slots.Any(s => s?.Request.Id == request.Id) || waiting.Any(w => w.Id == request.Id))
            throw new ArgumentException($"id: a request with id '{request.Id}' is already running", "id");
        waiting.AddLast(request);
    }

    /// <summary>
    /// Throws ArgumentException naming the field when the request could not be served (its options, a prompt with no
    /// room left in the context, a token outside the vocabulary). Reads only the model's shape: any thread may call it,
    /// so a server can refuse a request before queueing it.
    /// </summary>
    public void Validate(GenerationRequest request)
    {
        request.Options.Validate();
        if (request.Prompt.Count >= ContextLength)
            throw new ArgumentException($"prompt: {request.Prompt.Count} tokens leave no room to generate in model.context_length = {ContextLength}", "prompt");
        foreach (int token in request.Prompt)
            if (token < 0 || token >= forward.VocabSize) throw new ArgumentException($"prompt: token id {token} is not in the vocabulary (0..{forward.VocabSize - 1})", "prompt");
    }

    /// <summary>Drops a waiting or running request (its slot is free for the next step); false when it is unknown.</summary>
    public bool Cancel(string id)
    {
        for (var node = waiting.First; node is not null; node = node.Next)
            if (node.Value.Id == id)
            {
                waiting.Remove(node);
                return true;
            }
        for (int slot = 0; slot < slots.Length; slot++)
            if (slots[slot]?.Request.Id == id)
            {
                Release(slot);
                return true;
            }
        return false;
    }

    /// <summary>
    /// One iteration: every running request decodes one token in a single batched forward, then waiting requests take
    /// free slots and are prefilled, those of one prompt length together (each yielding its first token). Returns an
    /// event per request that advanced.
    /// </summary>
    public IReadOnlyList<GenerationEvent> Step()
    {
        var events = new List<GenerationEvent>();
        using var noGrad = torch.no_grad();
        var decoding = Enumerable.Range(0, slots.Length).Where(s => slots[s] is not null).ToArray();
        if (decoding.Length > 0)
        {
            using var scope = torch.NewDisposeScope();
            Accept(decoding, forward.Forward(decoding, decoding.Select(s => (long)slots[s]!.Next).ToArray(), 1, fresh: false), events);
        }
        var admitted = new List<int>();
        for (int slot = 0; slot < slots.Length && waiting.First is { } node; slot++)
        {
            if (slots[slot] is not null) continue;
            waiting.RemoveFirst();
            slots[slot] = new ActiveRequest(node.Value, new CompletionText(tokenizer, node.Value.Options.Stop));
            admitted.Add(slot);
        }
        // Prompts of one length are prefilled together, as one [rows, length] forward.
        foreach (var group in admitted.GroupBy(slot => PromptOf(slots[slot]!.Request).Count))
        {
            int[] rows = group.ToArray();
            using var scope = torch.NewDisposeScope();
            var ids = rows.SelectMany(slot => PromptOf(slots[slot]!.Request)).Select(t => (long)t).ToArray();
            Accept(rows, forward.Forward(rows, ids, group.Key, fresh: true), events);
        }
        return events;
    }

    IReadOnlyList<int> PromptOf(GenerationRequest request) => request.Prompt.Count > 0 ? request.Prompt : [tokenizer.EndOfText];

    /// <summary>Samples each row's next token from its logits [rows, V] and advances (or finishes) its request.</summary>
    void Accept(int[] rows, Tensor logits, List<GenerationEvent> events)
    {
        // One read of the greedy choices for the whole batch; sampled rows draw from their own generators.
        var greedy = logits.argmax(-1).cpu().data<long>().ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            int slot = rows[i];
            var active = slots[slot]!;
            var options = active.Request.Options;
            int token = options.Temperature == 0
                ? (int)greedy[i]
                : (int)TokenSampler.Sample(logits[i].unsqueeze(0), options.Temperature, options.TopP, active.Generator).item<long>();
            events.Add(Advance(slot, active, token));
        }
    }

    GenerationEvent Advance(int slot, ActiveRequest active, int token)
    {
        var request = active.Request;
        int prompt = Math.Max(1, request.Prompt.Count);
        if (token == tokenizer.EndOfText && !request.Options.IgnoreEndOfText)
        {
            string rest = active.Text.Flush();
            Release(slot);
            return new GenerationEvent(request.Id, null, rest, FinishReason.Stop, prompt, active.Text.Count);
        }
        var (piece, stopped) = active.Text.Add(token);
        active.Next = token;
        FinishReason? finish = stopped ? FinishReason.Stop
            : active.Text.Count >= request.Options.MaxTokens || forward.LengthOf(slot) >= ContextLength ? FinishReason.Length
            : null;
        if (finish == FinishReason.Length) piece += active.Text.Flush();
        if (finish is not null) Release(slot);
        return new GenerationEvent(request.Id, token, piece, finish, prompt, active.Text.Count);
    }

    void Release(int slot)
    {
        slots[slot]?.Generator.Dispose();
        slots[slot] = null;
    }

    public void Dispose()
    {
        for (int slot = 0; slot < slots.Length; slot++) Release(slot);
        forward.Dispose();
    }

    /// <summary>A request holding a slot: its sampler, its text so far and the token to feed next.</summary>
    sealed class ActiveRequest(GenerationRequest request, CompletionText text)
    {
        public GenerationRequest Request { get; } = request;
        public CompletionText Text { get; } = text;
        public Generator Generator { get; } = new((ulong)request.Options.Seed);
        public int Next { get; set; }
    }
}
