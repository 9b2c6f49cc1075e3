using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using Orleans.MoE.Kernels.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>Autoregressive generation for one prompt with a KV cache: prefill once, then one token per forward.</summary>
public sealed class TextGenerator(GptModel model, ITextTokenizer tokenizer, Device device)
{
    /// <summary>Yields generated text pieces as they are decoded; stops at max tokens, end of text or a stop sequence.</summary>
    public IEnumerable<GeneratedToken> Generate(string prompt, SamplingOptions options)
    {
        options.Validate();
        var context = tokenizer.Encode(prompt).ToList();
        if (context.Count == 0) context.Add(tokenizer.EndOfText);
        int limit = model.Config.ContextLength;
        model.eval();
        using var generator = new Generator((ulong)options.Seed);
        var cache = new KvCache(model.Config.Layers);
        var produced = new List<int>();
        string emitted = "";
        try
        {
            var pending = context.TakeLast(limit).ToArray();
            for (int i = 0; i < options.MaxTokens; i++)
            {
                int next;
                using (torch.no_grad())
                using (var scope = torch.NewDisposeScope())
                {
                    if (cache.Length + pending.Length > limit)
                    {
                        // The window is full: keep the newest half of the text and rebuild the cache from it.
                        cache.Dispose();
                        pending = context.Concat(produced).TakeLast(limit / 2).ToArray();
                    }
                    var input = torch.tensor(pending.Select(t => (long)t).ToArray(), device: device).unsqueeze(0);
                    var logits = model.Forward(input, RoutingContext.Inference, null, cache);
                    next = (int)TokenSampler.Sample(logits[0, -1].unsqueeze(0), options.Temperature, options.TopP, generator).item<long>();
                }
                if (next == tokenizer.EndOfText) yield break;
                produced.Add(next);
                pending = [next];
                string text = tokenizer.Decode(produced);
                string piece = text.Length >= emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal) ? text[emitted.Length..] : "";
                int stopAt = FirstStop(text, options.Stop, emitted.Length);
                if (stopAt >= 0)
                {
                    if (stopAt > emitted.Length) yield return new GeneratedToken(next, text[emitted.Length..stopAt]);
                    yield break;
                }
                // Hold back a piece that ends inside a multi-byte character until the character completes.
                if (piece.Length > 0 && !piece.EndsWith('\uFFFD'))
                {
                    emitted = text;
                    yield return new GeneratedToken(next, piece);
                }
            }
        }
        finally
        {
            cache.Dispose();
        }
    }

    static int FirstStop(string text, IReadOnlyList<string> stops, int from)
    {
        int best = -1;
        foreach (string stop in stops)
        {
            if (stop.Length == 0) continue;
            int at = text.IndexOf(stop, Math.Max(0, from - stop.Length + 1), StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }
}

/// <summary>One sampled token and the text it completed.</summary>
public sealed record GeneratedToken(int Id, string Text);
