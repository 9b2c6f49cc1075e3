using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Generation;

/// <summary>
/// Decode steps as forwards of a few fixed shapes, so that each shape can be captured once as a CUDA graph and
/// replayed: a step over slots s₁ … sₙ runs the first R slots of the cache (R the power of two at or above the largest
/// slot + 1, free slots computing along) over a window of W positions (the power of two at or above the longest row,
/// at least 64), with each row's token and position in one device tensor refilled before the step. Routing reads
/// nothing back (<see cref="RoutingContext.SyncFree"/>). Eager decode launches ~20 kernels per layer from the host
/// and waits on the expert loads; a replay is one launch.
/// </summary>
public sealed class FixedShapeDecoder : IDisposable
{
    const long SmallestWindow = 64;

    readonly GptModel model;
    readonly SlotKvCache cache;
    readonly Device device;
    readonly Dictionary<(int Rows, long Window), DecodeShape> shapes = new();

    /// <param name="graphs">Capture each shape as a CUDA graph (on a GPU, where the helper builds).</param>
    public FixedShapeDecoder(GptModel model, SlotKvCache cache, Device device, bool graphs)
    {
        this.model = model;
        this.cache = cache;
        this.device = device;
        if (graphs && device.type == DeviceType.CUDA)
        {
            if (CudaGraphLibrary.Available) Graphs = true;
            else GraphProblem = CudaGraphLibrary.Problem;
        }
    }

    /// <summary>True while steps replay CUDA graphs (false when not asked for, unavailable or a capture failed).</summary>
    public bool Graphs { get; private set; }

    /// <summary>Why graphs were asked for and are not used, or stopped being used (null otherwise).</summary>
    public string? GraphProblem { get; private set; }

    /// <summary>Shapes made so far (each a graph when <see cref="Graphs"/>).</summary>
    public int ShapeCount => shapes.Count;

    /// <summary>One token for each of <paramref name="slots"/> → logits [n, V] (fp32), each slot one position longer.</summary>
    public Tensor Decode(int[] slots, long[] tokens)
    {
        int rows = (int)Math.Min(PowerOfTwoAtLeast(slots.Max() + 1), cache.Slots);
        long window = Math.Min(PowerOfTwoAtLeast(Math.Max(SmallestWindow, slots.Max(cache.LengthOf) + 1)), cache.Capacity);
        var values = new long[2 * rows];
        for (int i = 0; i < slots.Length; i++)
        {
            values[slots[i]] = tokens[i];
            values[rows + slots[i]] = cache.LengthOf(slots[i]);
        }
        if (!shapes.TryGetValue((rows, window), out var shape))
            shapes[(rows, window)] = shape = new DecodeShape(input => Forward(input, rows, window), rows, device, Graphs);
        Tensor logits;
        try
        {
            logits = shape.Run(values);
        }
        catch (Exception e) when (shape.Capturing && e is not OperationCanceledException)
        {
            // A capture that fails (an operation the graph cannot hold) costs speed, not the request: this decoder
            // runs its steps eagerly from here (the failed step's warm-up wrote what the step writes again).
            GraphProblem = $"capturing a decode step failed, decoding eagerly: {e.Message}";
            Console.Error.WriteLine(GraphProblem);
            Graphs = false;
            DisposeShapes();
            return Decode(slots, tokens);
        }
        foreach (int slot in slots) cache.Extend(slot);
        // A copy of the rows asked for: the next replay rewrites the graph's output.
        using var picked = torch.tensor(slots.Select(s => (long)s).ToArray(), device: device);
        return logits.index_select(0, picked);
    }

    Tensor Forward(Tensor input, int rows, long window) =>
        model.Forward(input[0].view(rows, 1), RoutingContext.SyncFreeInference, null, cache.Window(rows, input[1], window)).select(1, -1);

    static long PowerOfTwoAtLeast(long value)
    {
        long power = 1;
        while (power < value) power <<= 1;
        return power;
    }

    public void Dispose() => DisposeShapes();

    void DisposeShapes()
    {
        foreach (var shape in shapes.Values) shape.Dispose();
        shapes.Clear();
    }

    /// <summary>
    /// One shape: its input tensor ([2, rows]: tokens, then positions) and, with graphs, the captured forward and the
    /// output it rewrites on every replay.
    /// </summary>
    sealed class DecodeShape(Func<Tensor, Tensor> forward, int rows, Device device, bool graphs) : IDisposable
    {
        readonly Tensor input = torch.zeros(2, rows, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        CudaGraph? graph;
        Tensor? output;

        /// <summary>True until this shape's graph is captured (a failure now is a capture's).</summary>
        public bool Capturing => graphs && graph is null;

        public Tensor Run(long[] values)
        {
            using (var host = torch.tensor(values).view(2, rows)) input.copy_(host);
            if (!graphs) return forward(input);
            if (graph is null)
            {
                // The warm-up is this step for real (the replay below rewrites the same keys and values): lazy
                // initialisation happens outside the capture, and no running request's cache sees stale input.
                var created = new CudaGraph(CudaDriver.OrdinalOf(device));
                try
                {
                    created.OnGraphStream(() =>
                    {
                        using var scope = torch.NewDisposeScope();
                        forward(input);
                    });
                    output = created.Capture(() =>
                    {
                        using var scope = torch.NewDisposeScope();
                        return forward(input).MoveToOuterDisposeScope();
                    }).DetachFromDisposeScope();
                }
                catch
                {
                    created.Dispose();
                    throw;
                }
                graph = created;
            }
            graph.Replay();
            return output!;
        }

        public void Dispose()
        {
            output?.Dispose();
            graph?.Dispose();
            input.Dispose();
        }
    }
}
