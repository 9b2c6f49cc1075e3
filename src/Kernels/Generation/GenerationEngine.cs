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
/// The model becomes an inference model (eval mode, dropless routing, weights in its compute dtype). Not thread-safe:
/// one caller (a serving loop) drives it.
/// </summary>
public sealed class GenerationEngine : IDisposable
{
    readonly GptModel model;
    readonly ITextTokenizer tokenizer;
    readonly Device device;
    readonly SlotKvCache cache;
    readonly ActiveRequest?[] slots;
    readonly LinkedList<GenerationRequest> waiting = new();

    public GenerationEngine(GptModel model, ITextTokenizer tokenizer, Device device, int maxBatch)
    {
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), $"max batch {maxBatch} must be at least 1");
        this.model = model;
        this.tokenizer = tokenizer;
        this.device = device;
        model.eval();
        foreach (var layer in model.MoeLayers) layer.Router.NeverDrop = true;
        // Weights are kept in the compute dtype (bf16 on a GPU): fp32 weights would be cast on every token, which at
        // decode batch sizes costs more than the matmuls themselves.
        if (model.ComputeType != ScalarType.Float32) model.to(model.ComputeType);
        cache = new SlotKvCache(model.Config.Layers, maxBatch, model.Config.ContextLength);
        slots = new ActiveRequest?[maxBatch];
    }

    public int MaxBatch => slots.Length;
    public int Running => slots.Count(s => s is not null);
    public int Waiting => waiting.Count;
    public bool HasWork => waiting.Count > 0 || Running > 0;
    public int ContextLength => model.Config.ContextLength;

    /// <summary>Queues a request; throws ArgumentException naming the field when it cannot be served.</summary>
    public void Submit(GenerationRequest request)
    {
        request.Options.Validate();
        if (request.Prompt.Count >= ContextLength)
            throw new ArgumentException($"prompt: {request.Prompt.Count} tokens leave no room to generate in model.context_length = {ContextLength}", "prompt");
        foreach (int token in request.Prompt)
            if (token < 0 || token >= model.VocabSize) throw new ArgumentException($"prompt: token id {token} is not in the vocabulary (0..{model.VocabSize - 1})", "prompt");
        if (slots.Any(s => s?.Request.Id == request.Id) || waiting.Any(w => w.Id == request.Id))
            throw new ArgumentException($"id: a request with id '{request.Id}' is already running", "id");
        waiting.AddLast(request);
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
            var input = torch.tensor(decoding.Select(s => (long)slots[s]!.Next).ToArray(), device: device).view(decoding.Length, 1);
            var logits = model.Forward(input, RoutingContext.Inference, null, cache.Rows(decoding));
            Accept(decoding, logits.select(1, 0), events);
        }
        var admitted = new List<int>();
        for (int slot = 0; slot < slots.Length && waiting.First is { } node; slot++)
        {
            if (slots[slot] is not null) continue;
            waiting.RemoveFirst();
            cache.Clear(slot);
            slots[slot] = new ActiveRequest(node.Value, new CompletionText(tokenizer, node.Value.Options.Stop));
            admitted.Add(slot);
        }
        // Prompts of one length are prefilled together, as one [rows, length] forward.
        foreach (var group in admitted.GroupBy(slot => PromptOf(slots[slot]!.Request).Count))
        {
            int[] rows = group.ToArray();
            using var scope = torch.NewDisposeScope();
            var ids = rows.SelectMany(slot => PromptOf(slots[slot]!.Request)).Select(t => (long)t).ToArray();
            var input = torch.tensor(ids, device: device).view(rows.Length, group.Key);
            var logits = model.Forward(input, RoutingContext.Inference, null, cache.Rows(rows));
            Accept(rows, logits.select(1, -1), events);
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
            : active.Text.Count >= request.Options.MaxTokens || cache.LengthOf(slot) >= ContextLength ? FinishReason.Length
            : null;
        if (finish == FinishReason.Length) piece += active.Text.Flush();
        if (finish is not null) Release(slot);
        return new GenerationEvent(request.Id, token, piece, finish, prompt, active.Text.Count);
    }

    void Release(int slot)
    {
        slots[slot]?.Generator.Dispose();
        slots[slot] = null;
        cache.Clear(slot);
    }

    public void Dispose()
    {
        for (int slot = 0; slot < slots.Length; slot++) Release(slot);
        cache.Dispose();
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
