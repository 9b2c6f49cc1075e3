using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Training;

/// <summary>Cross-entropy of a token stream under add-one-smoothed unigram frequencies of another.</summary>
public static class UnigramBaseline
{
    public static double Loss(TokenStream train, TokenStream evaluate, int vocabSize)
    {
        var counts = new double[vocabSize];
        foreach (int t in train.Tokens) counts[t]++;
        double total = train.Tokens.Length + vocabSize;
        double nats = 0;
        foreach (int t in evaluate.Tokens.Skip(1)) nats -= Math.Log((counts[t] + 1) / total);
        return nats / Math.Max(1, evaluate.Tokens.Length - 1);
    }
}
