using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Routing;

/// <summary>How one MoE layer's router picks experts, sizes capacity and adds noise (DeepSpeed-MoE semantics).</summary>
public sealed record GateSettings
{
    public required int Experts { get; init; }
    public int TopK { get; init; } = 1;
    public double CapacityFactor { get; init; } = 1.0;
    public double EvalCapacityFactor { get; init; } = 1.0;
    public int MinCapacity { get; init; } = 4;

    /// <summary>Capacity rounded up to a multiple of this (1 = DeepSpeed's exact capacity).</summary>
    public int CapacityAlignment { get; init; } = 1;

    public bool DropTokens { get; init; } = true;
    public bool UseRts { get; init; } = true;
    public RouterNoise Noise { get; init; } = RouterNoise.None;
    public double JitterEpsilon { get; init; } = 1e-2;
    public bool SecondExpertSampling { get; init; } = true;

    /// <summary>Router GEMM in the input's (compute) dtype instead of fp32; the softmax stays fp32.</summary>
    public bool RouterInComputeDtype { get; init; }

    /// <summary>Training draws random numbers to route (noise, second-expert sampling, random token selection).</summary>
    public bool RandomWhileTraining =>
        Noise != RouterNoise.None || (TopK == 2 && SecondExpertSampling) || (DropTokens && UseRts);

    public static GateSettings From(MoEConfig moe, int experts) => new()
    {
        Experts = experts,
        TopK = moe.TopK,
        CapacityFactor = moe.CapacityFactor,
        EvalCapacityFactor = moe.EvalCapacityFactor,
        MinCapacity = moe.MinCapacity,
        CapacityAlignment = moe.CapacityAlignment,
        DropTokens = moe.DropTokens,
        UseRts = moe.UseRts,
        Noise = moe.NoisyGatePolicy switch
        {
            "jitter" => RouterNoise.Jitter,
            "rsample" => RouterNoise.RSample,
            _ => RouterNoise.None,
        },
        JitterEpsilon = moe.JitterEpsilon,
        SecondExpertSampling = moe.SecondExpertSampling,
        RouterInComputeDtype = moe.RouterDtype == "compute",
    };
}

/// <summary>Router noise applied while training.</summary>
public enum RouterNoise
{
    None,

    /// <summary>Router input multiplied by U(1−ε, 1+ε) (Switch Transformer's jitter).</summary>
    Jitter,

    /// <summary>Gumbel noise added to the logits used to choose experts (not to the gate values).</summary>
    RSample,
}
