using static TorchSharp.torch;

namespace Orleans.MoE.Kernels;

/// <summary>
/// Tensor lifetimes inside a custom autograd function's backward. libtorch calls it outside the caller's dispose scopes
/// (on its own thread on a GPU); TorchSharp wraps the incoming gradients in tensors nobody disposes, and the gradients
/// handed back must outlive the call, since libtorch takes its own references only after it returns. Left to the
/// finalizer, both held GPU memory until a garbage collection (about 300 MB a step for one layer at 16k tokens), which
/// ran a benchmark out of an H200's 140 GB. Here the body runs in a dispose scope, the incoming gradients are disposed
/// once used, and the handed-back gradients' wrappers when the next backward on the same thread starts.
/// </summary>
public static class BackwardLifetimes
{
    [ThreadStatic] static List<Tensor>? handedBack;

    /// <param name="incoming">The gradients the function received (disposed afterwards unless handed back).</param>
    /// <param name="body">Computes the gradients to hand back, one per forward argument (null where none).</param>
    public static List<Tensor> Run(IEnumerable<Tensor?> incoming, Func<List<Tensor?>> body)
    {
        var previous = handedBack ??= [];
        foreach (var tensor in previous) tensor.Dispose();
        previous.Clear();
        List<Tensor?> results;
        using (NewDisposeScope())
        {
            results = body();
            foreach (var tensor in results) tensor?.MoveToOuterDisposeScope();
        }
        foreach (var tensor in incoming)
            if (tensor is not null && !results.Any(r => ReferenceEquals(r, tensor))) tensor.Dispose();
        previous.AddRange(results.OfType<Tensor>());
        return results!;
    }
}
