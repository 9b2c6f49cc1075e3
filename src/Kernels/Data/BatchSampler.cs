using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Data;

/// <summary>
/// Draws training batches of (input, target) windows from a token array, deterministically from a seed and
/// an explicit <see cref="SamplerPosition"/>, so a run resumed from a saved position continues exactly.
/// </summary>
/// <remarks>
/// Each epoch cuts the tokens into non-overlapping windows of SequenceLength+1 tokens (inputs plus the shifted
/// target), starting at a random offset within the slack left at the end, and visits them in a random
/// permutation; both come from SplitMix64 seeded by (seed, epoch). A window is used at most once per epoch and
/// the partial last batch of an epoch is dropped, so every batch has the same shape.
/// </remarks>
public sealed class BatchSampler
{
    private readonly int[] tokens;
    private long cachedEpoch = -1;
    private long cachedOffset;
    private long[] cachedOrder = [];

    /// <summary>Creates a sampler positioned at <paramref name="position"/> (the start when omitted).</summary>
    public BatchSampler(int[] tokens, int sequenceLength, int batchSize, long seed, SamplerPosition position = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        this.tokens = tokens;
        SequenceLength = sequenceLength;
        BatchSize = batchSize;
        Seed = seed;
        WindowsPerEpoch = Math.Max(0, tokens.Length - 1) / sequenceLength;
        BatchesPerEpoch = WindowsPerEpoch / batchSize;
        if (BatchesPerEpoch == 0)
            throw new ArgumentException(
                $"{tokens.Length} tokens make {WindowsPerEpoch} windows of {sequenceLength}, fewer than one batch of {batchSize}",
                nameof(tokens));
        Position = position;
        Validate(position);
    }

    /// <summary>Tokens per row (T).</summary>
    public int SequenceLength { get; }

    /// <summary>Rows per batch (B).</summary>
    public int BatchSize { get; }

    /// <summary>The seed all epochs' orders derive from.</summary>
    public long Seed { get; }

    /// <summary>Non-overlapping windows that fit in the token array.</summary>
    public long WindowsPerEpoch { get; }

    /// <summary>Full batches per epoch.</summary>
    public long BatchesPerEpoch { get; }

    /// <summary>The position of the batch <see cref="Next"/> returns next; save it to resume.</summary>
    public SamplerPosition Position { get; private set; }

    /// <summary>Returns the batch at <see cref="Position"/> as int64 [B, T] tensors and advances.</summary>
    public TokenBatch Next(Device? device = null)
    {
        var starts = WindowStarts(Position);
        Position = Position.Index + 1 == BatchesPerEpoch
            ? new SamplerPosition(Position.Epoch + 1, 0)
            : Position with { Index = Position.Index + 1 };
        return TokenBatch.FromWindows(tokens, starts, SequenceLength, device);
    }

    /// <summary>The first token index of each row of the batch at <paramref name="position"/>.</summary>
    public IReadOnlyList<long> WindowStarts(SamplerPosition position)
    {
        Validate(position);
        EnsureEpoch(position.Epoch);
        var starts = new long[BatchSize];
        for (int r = 0; r < BatchSize; r++)
        {
            starts[r] = cachedOffset + (cachedOrder[(position.Index * BatchSize) + r] * SequenceLength);
        }
        return starts;
    }

    private void Validate(SamplerPosition position)
    {
        if (position.Epoch < 0 || position.Index < 0 || position.Index >= BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(
                nameof(position), position, $"epoch must be >= 0 and index in 0..{BatchesPerEpoch - 1}");
    }

    private void EnsureEpoch(long epoch)
    {
        if (epoch == cachedEpoch) return;
        var rng = new SplitMix64(new SplitMix64(unchecked((ulong)Seed)).Next() ^ unchecked((ulong)epoch));
        long slack = (tokens.Length - 1) - (WindowsPerEpoch * SequenceLength);
        cachedOffset = (long)rng.NextBelow((ulong)slack + 1);
        var order = new long[WindowsPerEpoch];
        for (long i = 0; i < order.Length; i++) order[i] = i;
        // Fisher-Yates shuffle.
        for (long i = order.Length - 1; i > 0; i--)
        {
            long j = (long)rng.NextBelow((ulong)i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        cachedOrder = order;
        cachedEpoch = epoch;
    }
}
