using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Data;

/// <summary>Model inputs and next-token targets, both int64 [rows, length]; disposing frees both tensors.</summary>
public sealed class TokenBatch(Tensor input, Tensor target) : IDisposable
{
    /// <summary>Token ids fed to the model.</summary>
    public Tensor Input { get; } = input;

    /// <summary>The id following each input position.</summary>
    public Tensor Target { get; } = target;

    /// <summary>Number of predicted tokens in this batch.</summary>
    public long TargetCount => Target.numel();

    /// <summary>Builds a batch from <paramref name="rows"/> windows of <paramref name="length"/>+1 tokens starting at <paramref name="starts"/>.</summary>
    public static TokenBatch FromWindows(int[] tokens, IReadOnlyList<long> starts, int length, Device? device = null)
    {
        int rows = starts.Count;
        var input = new long[rows * length];
        var target = new long[rows * length];
        for (int r = 0; r < rows; r++)
        {
            long start = starts[r];
            for (int t = 0; t < length; t++)
            {
                input[(r * length) + t] = tokens[start + t];
                target[(r * length) + t] = tokens[start + t + 1];
            }
        }
        long[] shape = [rows, length];
        return new TokenBatch(
            tensor(input, shape, dtype: ScalarType.Int64, device: device),
            tensor(target, shape, dtype: ScalarType.Int64, device: device));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Input.Dispose();
        Target.Dispose();
    }
}
