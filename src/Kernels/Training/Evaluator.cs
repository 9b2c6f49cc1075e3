using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>Scores a model on non-overlapping windows of a token stream (no noise, evaluation capacity).</summary>
public static class Evaluator
{
    /// <param name="maxTokens">Score at most about this many target tokens, from the start (0 = the whole stream).</param>
    public static EvaluationResult Evaluate(GptModel model, TokenStream stream, Device device, int batchSize, long maxTokens = 0)
    {
        if (stream.Tokens.Length < 2) throw new ArgumentException($"the evaluation text has {stream.Tokens.Length} tokens; at least 2 are needed");
        bool wasTraining = model.training;
        model.eval();
        double nats = 0;
        long tokens = 0;
        try
        {
            using var noGrad = torch.no_grad();
            foreach (var batch in EvaluationBatches.Enumerate(stream.Tokens, model.Config.ContextLength, batchSize, device))
            {
                using var scope = torch.NewDisposeScope();
                using var owned = batch;
                var logits = model.Forward(batch.Input, RoutingContext.Inference, null, null);
                var summed = nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), batch.Target.view(-1), reduction: nn.Reduction.Sum);
                nats += summed.item<float>();
                tokens += batch.TargetCount;
                if (maxTokens > 0 && tokens >= maxTokens) break;
            }
        }
        finally
        {
            model.train(wasTraining);
        }
        // Bits per byte over the scored part: the split's bytes scaled by the share of its targets scored.
        double bytes = stream.Utf8ByteCount * ((double)tokens / EvaluationBatches.TargetCount(stream.Tokens));
        return new EvaluationResult(nats / tokens, tokens, nats / Math.Log(2) / bytes);
    }
}
