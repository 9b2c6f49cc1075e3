using TorchSharp;
using static Orleans.MoE.Kernels.Native.CudaModule;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// The MoE layer's fused routing kernels (<c>routing.cu</c>, a <see cref="CudaModule"/>: gate, slots, dispatch,
/// combine). Callers fall back to TorchSharp operations where <see cref="Supports"/>, <see cref="SupportsSlots"/> or
/// <see cref="SupportsRows"/> say no (CPU, other dtypes, no NVRTC).
/// </summary>
public static unsafe class RoutingKernels
{
    /// <summary>Threads per block of the one-warp-per-row kernels (8 rows a block).</summary>
    const int WarpThreads = 256;
    const int MaxSlotThreads = 1024;

    /// <summary>A gate kernel's lane holds 8 experts in registers; the first slot pass keeps (warps + 1) ints per expert
    /// in shared memory (256 experts: 33 KB of the 48 KB).</summary>
    public const int MaxExperts = 256;

    /// <summary>A gate kernel keeps its token's best k in registers.</summary>
    public const int MaxTopK = 8;

    static readonly CudaModule Kernels = new("routing.cu",
    [
        "gate_forward_f32", "gate_forward_bf16", "gate_backward_f32", "gate_backward_bf16", "route_ranks", "route_rows",
        "dispatch_forward_f32", "dispatch_forward_bf16", "dispatch_backward_f32", "dispatch_backward_bf16",
        "combine_forward_f32", "combine_forward_bf16", "combine_backward_f32", "combine_backward_bf16",
    ]);

    /// <summary>
    /// False runs TorchSharp's operations instead, for comparisons in one process (the benchmark); the environment
    /// variable MOE_NATIVE_ROUTING=0 sets it false at start.
    /// </summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("MOE_NATIVE_ROUTING") != "0";

    /// <summary>True when the logits of <paramref name="input"/> (fp32 or bf16 on a GPU) for <paramref name="experts"/>
    /// experts can be routed by these kernels.</summary>
    public static bool Supports(Tensor input, int experts, int topK) =>
        Runs(input) && experts <= MaxExperts && topK <= MaxTopK && topK <= experts;

    /// <summary>True when the slots of <paramref name="chosen"/> [N, k] among <paramref name="experts"/> can come from <see cref="Slots"/>.</summary>
    public static bool SupportsSlots(Tensor chosen, int experts) =>
        OnItsGpu(chosen) && experts <= MaxExperts && chosen.shape[0] * chosen.shape[1] < int.MaxValue;

    /// <summary>Kernels on, and <paramref name="tensor"/> fp32 or bf16 on a GPU where they load.</summary>
    static bool Runs(Tensor tensor) => tensor.dtype is ScalarType.Float32 or ScalarType.BFloat16 && OnItsGpu(tensor);

    /// <summary>Kernels on, and <paramref name="tensor"/> on a GPU where they load.</summary>
    static bool OnItsGpu(Tensor tensor) => Enabled && tensor.device_type == DeviceType.CUDA && Problem(tensor.device) is null;

    /// <summary>Why the kernels cannot run on <paramref name="device"/> (null when they can).</summary>
    public static string? Problem(Device device) => Kernels.Problem(device);

    /// <summary>logits [N, E] → probabilities [N, E] (fp32), the k largest of each row [N, k] (fp32) and their experts [N, k].</summary>
    public static (Tensor Probs, Tensor Gates, Tensor Chosen) GateForward(Tensor logits, int k)
    {
        logits = logits.contiguous();
        long n = logits.shape[0];
        int e = (int)logits.shape[1];
        var device = logits.device;
        var probs = torch.empty(n, e, dtype: ScalarType.Float32, device: device);
        var gates = torch.empty(n, k, dtype: ScalarType.Float32, device: device);
        var chosen = torch.empty(n, k, dtype: ScalarType.Int64, device: device);
        IntPtr l = Address(logits), p = Address(probs), g = Address(gates), c = Address(chosen);
        void** arguments = stackalloc void*[] { &l, &p, &g, &c, &n, &e, &k };
        LaunchPerRow("gate_forward", logits, n, arguments);
        GC.KeepAlive(logits);
        return (probs, gates, chosen);
    }

    /// <summary>
    /// The logits' gradient (in the logits' dtype) from the probabilities' [N, E] and the top-<paramref name="k"/> gates'
    /// [N, k] gradients (null: none reached them, zeros); probabilities and choices are recomputed from the logits. A
    /// probabilities' gradient that is one fp32 row expanded over the tokens (the load-balancing loss's) is read as it is.
    /// </summary>
    public static Tensor GateBackward(Tensor logits, Tensor? probsGradient, Tensor? gatesGradient, int k)
    {
        logits = logits.contiguous();
        long n = logits.shape[0];
        int e = (int)logits.shape[1];
        var gradient = torch.empty_like(logits);
        bool broadcast = probsGradient is { dtype: ScalarType.Float32 } g && g.stride(0) == 0 && g.stride(1) == 1;
        probsGradient = broadcast ? probsGradient!.select(0, 0) : probsGradient?.to_type(ScalarType.Float32).contiguous();
        long probsStride = broadcast ? 0 : e;
        gatesGradient = gatesGradient?.to_type(ScalarType.Float32).contiguous();
        IntPtr l = Address(logits), o = Address(gradient);
        IntPtr gp = Address(probsGradient), gg = Address(gatesGradient);
        void** arguments = stackalloc void*[] { &l, &gp, &probsStride, &gg, &o, &n, &e, &k };
        LaunchPerRow("gate_backward", logits, n, arguments);
        GC.KeepAlive(logits);
        GC.KeepAlive(probsGradient);
        GC.KeepAlive(gatesGradient);
        return gradient;
    }

    /// <summary>What <see cref="Slots"/> computes; see <c>route_ranks</c> and <c>route_rows</c> in routing.cu.</summary>
    /// <param name="Destination">[N·k] buffer row of each (token, choice); the drop row (= rows) when dropped.</param>
    /// <param name="Counts">[E] every expert's choices.</param>
    /// <param name="Dropped">[N, k] bool, with a capacity.</param>
    /// <param name="Ends">[E] int32 where each expert's rows end, packed.</param>
    /// <param name="RowSource">[rows] the (token·k + choice) each buffer row holds, 0 when empty.</param>
    /// <param name="Balance">[E] fp32: the choices the load-balancing loss counts per expert (first choices for k ≤ 2,
    /// all for more) times the scale given to <see cref="Slots"/>.</param>
    /// <param name="AuxLoss">fp32 scalar Σ probs · Balance (the load-balancing loss, no autograd history), when
    /// <see cref="Slots"/> had the probabilities.</param>
    /// <param name="Weights">[N, 1] fp32: the gate of a kept choice, 0 for a dropped one, when <see cref="Slots"/> had
    /// the gates (one choice, a capacity).</param>
    public sealed record SlotTable(Tensor Destination, Tensor Counts, Tensor? Dropped, Tensor? Ends, Tensor RowSource, Tensor Balance,
        Tensor? AuxLoss, Tensor? Weights);

    /// <summary>
    /// Slots and buffer rows for the chosen experts [N, k] of one routing group: with <paramref name="capacity"/> &gt; 0
    /// padded rows expert·capacity + slot (dropped past the capacity), with 0 packed rows whose experts start at
    /// multiples of <paramref name="alignment"/>; <paramref name="rows"/> is the buffer's row count;
    /// <paramref name="balanceScale"/> scales the load-balancing loss's counts (<see cref="SlotTable.Balance"/>). The same
    /// two kernels finish the load-balancing loss from <paramref name="probs"/> [N, E] (fp32) and, for one choice with a
    /// capacity, the combine weights from <paramref name="gates"/> [N, 1] (fp32); null skips either.
    /// </summary>
    public static SlotTable Slots(Tensor chosen, int experts, int capacity, int alignment, long rows, double balanceScale, Tensor? probs = null, Tensor? gates = null)
    {
        chosen = chosen.contiguous();
        long n = chosen.shape[0];
        int k = (int)chosen.shape[1], e = experts;
        var device = chosen.device;
        var destination = torch.empty(n * k, dtype: ScalarType.Int64, device: device);
        var counts = torch.empty(e, dtype: ScalarType.Int64, device: device);
        var dropped = capacity > 0 ? torch.empty(n, k, dtype: ScalarType.Bool, device: device) : null;
        var ends = capacity == 0 ? torch.empty(e, dtype: ScalarType.Int32, device: device) : null;
        var rowSource = torch.empty(rows, dtype: ScalarType.Int64, device: device);
        var balance = torch.empty(e, dtype: ScalarType.Float32, device: device);
        float scale = (float)balanceScale;
        long choices = n * k;
        int threads = (int)Math.Min(MaxSlotThreads, (Math.Max(choices, 1) + 31) / 32 * 32);
        int tiles = (int)Math.Max(1, (choices + threads - 1) / threads);
        using var tileCounts = torch.empty((long)tiles * 2 * e, dtype: ScalarType.Int32, device: device);
        probs = probs?.to_type(ScalarType.Float32).contiguous();
        // The probabilities' column sums run in slices of 256 tokens beside the first pass's blocks.
        int slices = probs is null ? 1 : Math.Max(1, threads / 256);
        using var columnSums = probs is null ? null : torch.empty((long)tiles * slices * e, dtype: ScalarType.Float32, device: device);
        var auxLoss = probs is null ? null : torch.empty([], dtype: ScalarType.Float32, device: device);
        gates = k == 1 && capacity > 0 ? gates?.to_type(ScalarType.Float32).contiguous() : null;
        var weights = gates is null ? null : torch.empty(n, 1, dtype: ScalarType.Float32, device: device);
        IntPtr c = Address(chosen), d = Address(destination), counted = Address(counts), r = Address(rowSource), t = Address(tileCounts);
        IntPtr dr = Address(dropped), en = Address(ends), b = Address(balance);
        IntPtr p = Address(probs), sums = Address(columnSums), aux = Address(auxLoss), g = Address(gates), w = Address(weights);
        void** ranks = stackalloc void*[] { &c, &n, &k, &e, &rows, &d, &t, &r, &p, &sums };
        Launch(Kernels.Function(device, "route_ranks"), device, ((uint)tiles, (uint)slices), threads, (uint)((threads / 32 + 1) * e * sizeof(int)), ranks);
        void** rowArguments = stackalloc void*[] { &c, &n, &k, &e, &capacity, &alignment, &rows, &tiles, &slices, &t, &d, &counted, &dr, &en, &r, &scale, &b, &sums, &aux, &g, &w };
        Launch(Kernels.Function(device, "route_rows"), device, (uint)tiles, threads, (uint)(3 * e * sizeof(int) + e * sizeof(float)), rowArguments);
        GC.KeepAlive(chosen);
        GC.KeepAlive(probs);
        GC.KeepAlive(gates);
        return new SlotTable(destination, counts, dropped, ends, rowSource, balance, auxLoss, weights);
    }

    /// <summary>True when rows like <paramref name="rows"/> ([*, M], fp32 or bf16 on a GPU, M filling whole 16-byte
    /// packs) can be dispatched and combined by these kernels.</summary>
    public static bool SupportsRows(Tensor rows) =>
        Runs(rows) && rows.shape[^1] * rows.ElementSize % 16 == 0 && rows.shape[^1] < int.MaxValue;

    /// <summary>tokens [N, M] → expert buffer [rows, M]: row ρ holds token rowSource[ρ] / k, or zeros when empty.</summary>
    public static Tensor DispatchForward(Tensor tokens, Tensor rowSource, Tensor destination, int k, long rows)
    {
        tokens = tokens.contiguous();
        int m = (int)tokens.shape[1];
        var buffer = torch.empty(rows, m, dtype: tokens.dtype, device: tokens.device);
        IntPtr x = Address(tokens), s = Address(rowSource), d = Address(destination), b = Address(buffer);
        void** arguments = stackalloc void*[] { &x, &s, &d, &k, &rows, &m, &b };
        LaunchPerRow("dispatch_forward", tokens, rows, arguments);
        GC.KeepAlive(tokens);
        return buffer;
    }

    /// <summary>The buffer's gradient [rows, M] → the tokens' [N, M]: each token's kept choices' rows summed.</summary>
    public static Tensor DispatchBackward(Tensor bufferGradient, Tensor destination, long n, int k)
    {
        bufferGradient = bufferGradient.contiguous();
        long rows = bufferGradient.shape[0];
        int m = (int)bufferGradient.shape[1];
        var gradient = torch.empty(n, m, dtype: bufferGradient.dtype, device: bufferGradient.device);
        IntPtr g = Address(bufferGradient), d = Address(destination), o = Address(gradient);
        void** arguments = stackalloc void*[] { &g, &d, &n, &k, &rows, &m, &o };
        LaunchPerRow("dispatch_backward", bufferGradient, n, arguments);
        GC.KeepAlive(bufferGradient);
        return gradient;
    }

    /// <summary>Expert outputs [rows, M] → tokens [N, M]: Σ over each token's kept choices of weight · its row (fp32 sums).</summary>
    public static Tensor CombineForward(Tensor output, Tensor destination, Tensor weights, long n, int k)
    {
        output = output.contiguous();
        long rows = output.shape[0];
        int m = (int)output.shape[1];
        var y = torch.empty(n, m, dtype: output.dtype, device: output.device);
        weights = weights.to_type(ScalarType.Float32).contiguous();
        IntPtr o = Address(output), d = Address(destination), w = Address(weights), r = Address(y);
        void** arguments = stackalloc void*[] { &o, &d, &w, &n, &k, &rows, &m, &r };
        LaunchPerRow("combine_forward", output, n, arguments);
        GC.KeepAlive(output);
        GC.KeepAlive(weights);
        return y;
    }

    /// <summary>The combined tokens' gradient [N, M] → the outputs' [rows, M] (zeros for empty rows) and the weights' [N, k].</summary>
    public static (Tensor Output, Tensor Weights) CombineBackward(Tensor yGradient, Tensor output, Tensor rowSource, Tensor destination, Tensor weights, int k)
    {
        yGradient = yGradient.contiguous();
        output = output.contiguous();
        long rows = output.shape[0];
        int m = (int)output.shape[1];
        var outputGradient = torch.empty_like(output);
        // Every element is written by the kernel: kept choices by their row's warp, dropped ones by the warps past the rows.
        var weightsGradient = torch.empty(weights.shape, dtype: ScalarType.Float32, device: output.device);
        weights = weights.to_type(ScalarType.Float32).contiguous();
        long choices = weights.numel();
        IntPtr g = Address(yGradient), o = Address(output), s = Address(rowSource), d = Address(destination), w = Address(weights);
        IntPtr go = Address(outputGradient), gw = Address(weightsGradient);
        void** arguments = stackalloc void*[] { &g, &o, &s, &d, &w, &choices, &k, &rows, &m, &go, &gw };
        LaunchPerRow("combine_backward", output, rows + (choices + 31) / 32, arguments);
        GC.KeepAlive(yGradient);
        GC.KeepAlive(output);
        GC.KeepAlive(weights);
        return (outputGradient, weightsGradient);
    }

    /// <summary>One warp per row (or token) for <paramref name="count"/> of them, in <paramref name="like"/>'s dtype variant.</summary>
    static void LaunchPerRow(string name, Tensor like, long count, void** arguments)
    {
        if (count == 0) return;
        uint blocks = checked((uint)((count * 32 + WarpThreads - 1) / WarpThreads));
        Launch(Kernels.Function(like.device, name, like.dtype), like.device, blocks, WarpThreads, 0, arguments);
    }
}
