using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Tokenizers;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>One prompt at a time, as <c>moe generate</c> runs it: the generation engine with a batch of one.</summary>
public sealed class TextGenerator(GptModel model, ITextTokenizer tokenizer, Device device)
{
    /// <summary>
    /// Yields an event per sampled token as it is decoded (the last says why it finished). A prompt longer than the
    /// context keeps its newest half, so there is room to generate.
    /// </summary>
    public IEnumerable<GenerationEvent> Generate(string prompt, SamplingOptions options)
    {
        var ids = tokenizer.Encode(prompt);
        int context = model.Config.ContextLength;
        if (ids.Length >= context) ids = ids[^(context / 2)..];
        using var engine = new GenerationEngine(model, tokenizer, device, maxBatch: 1);
        engine.Submit(new GenerationRequest("generate", ids, options));
        while (engine.HasWork)
            foreach (var e in engine.Step())
                yield return e;
    }
}
