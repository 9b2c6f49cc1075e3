namespace Orleans.MoE.Kernels.Generation;

/// <summary>One completion to generate: a caller-chosen id (unique among running requests), the prompt's token ids and how to sample.</summary>
public sealed record GenerationRequest(string Id, IReadOnlyList<int> Prompt, SamplingOptions Options);
