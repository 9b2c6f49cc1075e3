using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Data;

/// <summary>Walks a whole token array in order, in non-overlapping windows, for validation and test loss.</summary>
public static class EvaluationBatches
{
    /// <summary>
    /// Yields batches of up to <paramref name="batchSize"/> windows of <paramref name="sequenceLength"/> tokens.
    /// Every token after the first is a target exactly once: the tokens left over after the full windows come
    /// last as one shorter [1, r] batch, so sums of per-token loss cover the whole array.
    /// </summary>
    public static IEnumerable<TokenBatch> Enumerate(int[] tokens, int sequenceLength, int batchSize, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        return EnumerateValidated(tokens, sequenceLength, batchSize, device);
    }

    /// <summary>Number of targets Enumerate yields in total: one per token after the first.</summary>
    public static long TargetCount(int[] tokens) => Math.Max(0, tokens.Length - 1);

    private static IEnumerable<TokenBatch> EnumerateValidated(int[] tokens, int sequenceLength, int batchSize, Device? device)
    {
        long targets = TargetCount(tokens);
        long fullWindows = targets / sequenceLength;
        var starts = new List<long>(batchSize);
        for (long w = 0; w < fullWindows; w++)
        {
            starts.Add(w * sequenceLength);
            if (starts.Count == batchSize || w == fullWindows - 1)
            {
                yield return TokenBatch.FromWindows(tokens, starts, sequenceLength, device);
                starts.Clear();
            }
        }
        int remainder = (int)(targets - (fullWindows * sequenceLength));
        if (remainder > 0)
            yield return TokenBatch.FromWindows(tokens, [fullWindows * sequenceLength], remainder, device);
    }
}
