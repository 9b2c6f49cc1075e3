using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>Draws token ids from [B, V] logits with temperature and nucleus (top-p) sampling from a seeded generator.</summary>
public static class TokenSampler
{
    public static Tensor Sample(Tensor logits, double temperature, double topP, Generator generator)
    {
        if (temperature == 0) return logits.argmax(-1);
        using var scope = torch.NewDisposeScope();
        var probs = (logits.to_type(ScalarType.Float32) / temperature).softmax(-1);
        if (topP < 1)
        {
            var (sorted, order) = probs.sort(-1, true, true);
            // Keep a token while the probability before it is still below p (the top token is always kept).
            var before = sorted.cumsum(-1) - sorted;
            sorted = sorted.masked_fill(before.ge(topP), 0);
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted);
            probs = probs / probs.sum(-1, keepdim: true);
        }
        // Draw on the CPU: the generator is a CPU one, and one draw per step is cheap.
        return probs.cpu().multinomial(1, false, generator).squeeze(-1).to(logits.device).MoveToOuterDisposeScope();
    }
}
