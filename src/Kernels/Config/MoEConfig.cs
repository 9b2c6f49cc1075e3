namespace Orleans.MoE.Kernels.Config;

/// <summary>Which MoE layers exist and how they route, with DeepSpeed-MoE's options and defaults.</summary>
public sealed record MoEConfig
{
    /// <summary>Where MoE layers go: "every_other", "all", "first_half", "second_half", or explicit indices.</summary>
    public LayerPlacement Layers { get; init; } = LayerPlacement.EveryOther;

    /// <summary>Experts per MoE layer: one count for all, or one per MoE layer ("32x10,64x2" or [32, 32, ...]).</summary>
    public ExpertCounts Experts { get; init; } = ExpertCounts.Uniform(8);

    public int TopK { get; init; } = 1;

    /// <summary>Residual MoE: out = c0·MoE(x) + c1·MLP(x), c = softmax(Linear(M, 2)(x)).</summary>
    public bool Residual { get; init; }

    /// <summary>Hidden width of each expert; 0 means the model's d_ff.</summary>
    public int ExpertFfn { get; init; }

    public double CapacityFactor { get; init; } = 1.0;
    public double EvalCapacityFactor { get; init; } = 1.0;
    public int MinCapacity { get; init; } = 4;

    /// <summary>Round capacity up to a multiple of this for the matrix units (1 = exact, as DeepSpeed).</summary>
    public int CapacityAlignment { get; init; } = 1;

    /// <summary>False = dropless: capacity grows to the largest expert load.</summary>
    public bool DropTokens { get; init; } = true;

    /// <summary>Random token selection: who is dropped is chosen at random rather than by position.</summary>
    public bool UseRts { get; init; } = true;

    /// <summary>Router noise while training: "none", "jitter" (input × U(1±ε)) or "rsample" (Gumbel on logits).</summary>
    public string NoisyGatePolicy { get; init; } = "none";

    public double JitterEpsilon { get; init; } = 1e-2;

    /// <summary>
    /// The router's GEMM: "fp32" (DeepSpeed: input and weight in fp32) or "compute" (Megatron-Core's default: the model's
    /// compute dtype, logits then softmaxed in fp32), which skips the fp32 copy of the input and runs on tensor cores.
    /// </summary>
    public string RouterDtype { get; init; } = "fp32";

    /// <summary>Top-2 picks its second expert with Gumbel noise while training (DeepSpeed's default).</summary>
    public bool SecondExpertSampling { get; init; } = true;

    public double AuxLossCoef { get; init; } = 0.01;
    public double ZLossCoef { get; init; }

    /// <summary>Tokens per routing group (GShard's group): capacity, drops and the aux loss are per group. 0 = one micro-batch.</summary>
    public int RoutingGroupTokens { get; init; }

    internal static readonly string[] NoisePolicies = ["none", "jitter", "rsample"];
    internal static readonly string[] RouterDtypes = ["fp32", "compute"];
}
