namespace Orleans.MoE.Kernels.Training;

/// <summary>Loss of a model on a token split: mean cross-entropy (nats/token), perplexity and bits per UTF-8 byte.</summary>
public sealed record EvaluationResult(double Loss, long Tokens, double BitsPerByte)
{
    public double Perplexity => Math.Exp(Loss);
}
