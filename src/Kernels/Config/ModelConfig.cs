namespace Orleans.MoE.Kernels.Config;

/// <summary>Shape of the GPT-style decoder (pre-norm, causal attention, tied embeddings).</summary>
public sealed record ModelConfig
{
    public int Layers { get; init; } = 4;
    public int DModel { get; init; } = 128;
    public int Heads { get; init; } = 4;

    /// <summary>Hidden width of dense MLPs (and of experts unless <see cref="MoEConfig.ExpertFfn"/> is set).</summary>
    public int DFf { get; init; } = 512;

    public int ContextLength { get; init; } = 128;

    /// <summary>"learned" absolute position embeddings or "rotary" (RoPE on queries and keys).</summary>
    public string Positions { get; init; } = "learned";

    public bool TieEmbeddings { get; init; } = true;
    public double Dropout { get; init; }

    /// <summary>"byte" (default for tiny runs) or "gpt2".</summary>
    public string Tokenizer { get; init; } = "byte";

    internal static readonly string[] PositionKinds = ["learned", "rotary"];
}
