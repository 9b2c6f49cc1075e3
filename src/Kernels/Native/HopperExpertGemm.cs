using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// The expert MLP's data products on Hopper GPUs (compute capability 9.0) through our own grouped GEMM
/// (<c>expert_gemm.cu</c>: TMA, wgmma, persistent CTAs with the epilogue on warps of its own), with the exact GELU
/// forward and backward in its epilogues instead of two passes over the hidden activations. Two tile shapes: 128 rows ×
/// 256 columns for the dropless layout's long groups (all four products; each faster than libtorch's,
/// bench/results/wgmma-grouped-gemm-h200.md), and swapped tiles of 128 columns × 160 tokens for capacity buffers of at
/// most 160 tokens an expert, where only the two products with a GELU in the epilogue beat cuBLAS
/// (bench/results/swapped-expert-gemm-h200.md). Results equal libtorch's GEMMs followed by <c>gelu</c> /
/// <c>gelu_backward</c> bit for bit on an H200. Each device is checked once against a float32 reference before the
/// kernels are used; <see cref="Problem"/> says why they are not.
/// </summary>
public static unsafe class HopperExpertGemm
{
    const int Threads = 384;
    const int RowBox = 128;
    const int KMajorWeightBox = 256;
    const int NMajorWeightBox = 64;
    const int SwappedThreads = 512;

    /// <summary>A swapped tile's output columns, and the box in which it reads K-major weights.</summary>
    const int SwappedColumns = 128;

    /// <summary>The K step of every kernel (64 bf16: one 128-byte swizzle row).</summary>
    const long KStep = 64;

    /// <summary>The tokens of one swapped tile: capacity buffers up to this many tokens an expert take that path.</summary>
    public const long SwappedTokens = 160;

    /// <summary>
    /// The fewest tokens an expert for the swapped path: a tile computes all 160 token columns, eight times the work at
    /// T512 E32's 20, where the one run made was 5 % slower than cuBLAS (0.621 against 0.589 ms; within that row's spread)
    /// while T512 E8's 80 was faster in two runs of three.
    /// </summary>
    const long MinSwappedTokens = 64;

    /// <summary>Every width is the K of one product (64-column steps) and the N of another (256-column tiles).</summary>
    const long WidthMultiple = 256;

    /// <summary>The kernels keep the group ends in shared memory.</summary>
    public const int MaxExperts = 64;

    // Before Kernels: static fields initialise in the order they are written.
    static readonly string[] GemmKernels = ["expert_gemm_kmajor", "expert_gemm_nmajor", "expert_gemm_kmajor_gelu_backward", "expert_gemm_nmajor_gelu"];
    static readonly string[] SwappedKernels = ["expert_gemm_swapped_kmajor_gelu_backward", "expert_gemm_swapped_nmajor_gelu"];

    static readonly CudaModule Kernels = new("expert_gemm.cu",
    [
        .. GemmKernels, .. SwappedKernels, "build_gelu_tables", "expert_gemm_shared_bytes",
    ], architectureSpecific: true);

    /// <summary>
    /// The dropless layout's path (row tiles), opt-in: MOE_HOPPER_GEMM=1 sets it at start (the benchmark sets it for one
    /// variant). Each product alone is faster than libtorch's, but timed back to back under the H200's 700 W cap the
    /// whole MLP gained only 0.19 ms of 11.4, and the graphed E16 k2 layer ran 0.21–0.33 ms slower
    /// (bench/results/wgmma-grouped-gemm-h200.md), so libtorch's grouped GEMM stays the default there.
    /// </summary>
    public static bool Enabled { get; set; } = Setting == "1";

    /// <summary>
    /// The capacity layout's path (swapped tiles, <see cref="SupportsCapacity"/>), on unless MOE_HOPPER_GEMM=0: the
    /// graphed T4096 E32 layer ran faster with it in all three runs made (0.761, 0.752, 0.758 against 0.763, 0.797,
    /// 0.773 ms), T512 E8 in two of three (bench/results/swapped-expert-gemm-h200.md).
    /// </summary>
    public static bool CapacityEnabled { get; set; } = Setting != "0";

    static string? Setting => Environment.GetEnvironmentVariable("MOE_HOPPER_GEMM");

    /// <summary>What a device needs once: the kernels' shared memory, its multiprocessors and the GELU tables.</summary>
    sealed record DeviceState(string? Problem, uint SharedBytes = 0, uint SwappedSharedBytes = 0, uint Multiprocessors = 0, Tensor? GeluGradient = null,
        Tensor? Gelu = null);

    static readonly ConcurrentDictionary<int, Lazy<DeviceState>> States = new();

    /// <summary>
    /// True when rows like <paramref name="rows"/> through <paramref name="experts"/> experts of width
    /// <paramref name="modelWidth"/> → <paramref name="expertWidth"/> → <paramref name="modelWidth"/> can take this path:
    /// bf16 on a Hopper GPU where the kernels load and passed their check, widths in whole tiles, at most 64 experts.
    /// The first call on a device compiles and checks the kernels (outside any CUDA graph capture).
    /// </summary>
    public static bool Supports(Tensor rows, long experts, long modelWidth, long expertWidth) =>
        Enabled && rows.device_type == DeviceType.CUDA && rows.dtype == ScalarType.BFloat16 && experts <= MaxExperts
        && modelWidth % WidthMultiple == 0 && expertWidth % WidthMultiple == 0 && Problem(rows.device) is null;

    /// <summary>
    /// True when a capacity buffer like <paramref name="buffer"/> ([E, C, M], bf16 on a Hopper GPU where the kernels load
    /// and passed their check) can take <see cref="FirstSwapped"/> and <see cref="PreGradientSwapped"/>: C from 64 to one
    /// swapped tile of tokens, M in whole 64-column steps, F in whole 128-column tiles, at most 64 experts, and cuBLASLt's
    /// tuned batched GEMM there for the other products.
    /// </summary>
    public static bool SupportsCapacity(Tensor buffer, long modelWidth, long expertWidth) =>
        CapacityEnabled && buffer.device_type == DeviceType.CUDA && buffer.dtype == ScalarType.BFloat16 && buffer.dim() == 3
        && buffer.shape[0] <= MaxExperts && buffer.shape[1] is >= MinSwappedTokens and <= SwappedTokens && modelWidth % KStep == 0 && expertWidth % SwappedColumns == 0
        && BatchedExpertGemm.Supports(buffer) && Problem(buffer.device) is null;

    /// <summary>Why the kernels cannot run on <paramref name="device"/> (null when they can).</summary>
    public static string? Problem(Device device) => device.type != DeviceType.CUDA ? "not a CUDA device" : State(device).Problem;

    /// <summary>rows [R, M] grouped by <paramref name="ends"/> ([E] int32) times W1 [E, M, F] → the pre-activations and gelu of them, [R, F] each.</summary>
    public static (Tensor Pre, Tensor Hidden) First(Tensor rows, Tensor w1, Tensor ends) => First(State(rows.device), rows, w1, ends);

    /// <summary>hidden [R, F] times W2 [E, F, M] → [R, M].</summary>
    public static Tensor Second(Tensor hidden, Tensor w2, Tensor ends) => Second(State(hidden.device), hidden, w2, ends);

    /// <summary>The output's gradient [R, M] times W2ᵀ, times gelu'(pre) → the pre-activations' gradient [R, F].</summary>
    public static Tensor PreGradient(Tensor outputGradient, Tensor w2, Tensor pre, Tensor ends) =>
        PreGradient(State(outputGradient.device), outputGradient, w2, pre, ends);

    /// <summary><see cref="First"/> in swapped tiles (groups of at most 160 rows waste nothing).</summary>
    public static (Tensor Pre, Tensor Hidden) FirstSwapped(Tensor rows, Tensor w1, Tensor ends) => First(State(rows.device), rows, w1, ends, swapped: true);

    /// <summary><see cref="PreGradient"/> in swapped tiles.</summary>
    public static Tensor PreGradientSwapped(Tensor outputGradient, Tensor w2, Tensor pre, Tensor ends) =>
        PreGradient(State(outputGradient.device), outputGradient, w2, pre, ends, swapped: true);

    /// <summary>The pre-activations' gradient [R, F] times W1ᵀ → the rows' gradient [R, M].</summary>
    public static Tensor RowsGradient(Tensor preGradient, Tensor w1, Tensor ends) => RowsGradient(State(preGradient.device), preGradient, w1, ends);

    static (Tensor Pre, Tensor Hidden) First(DeviceState state, Tensor rows, Tensor w1, Tensor ends, bool swapped = false)
    {
        var pre = torch.empty(rows.shape[0], w1.shape[2], dtype: rows.dtype, device: rows.device);
        var hidden = torch.empty_like(pre);
        Run(swapped ? "expert_gemm_swapped_nmajor_gelu" : "expert_gemm_nmajor_gelu", state, rows, w1, nMajor: true, ends, hidden, pre, state.Gelu, swapped);
        return (pre, hidden);
    }

    static Tensor Second(DeviceState state, Tensor hidden, Tensor w2, Tensor ends)
    {
        var output = torch.empty(hidden.shape[0], w2.shape[2], dtype: hidden.dtype, device: hidden.device);
        Run("expert_gemm_nmajor", state, hidden, w2, nMajor: true, ends, output, null, null);
        return output;
    }

    static Tensor PreGradient(DeviceState state, Tensor outputGradient, Tensor w2, Tensor pre, Tensor ends, bool swapped = false)
    {
        var gradient = torch.empty(outputGradient.shape[0], w2.shape[1], dtype: outputGradient.dtype, device: outputGradient.device);
        Run(swapped ? "expert_gemm_swapped_kmajor_gelu_backward" : "expert_gemm_kmajor_gelu_backward", state, outputGradient, w2, nMajor: false, ends,
            gradient, pre, state.GeluGradient, swapped);
        return gradient;
    }

    static Tensor RowsGradient(DeviceState state, Tensor preGradient, Tensor w1, Tensor ends)
    {
        var gradient = torch.empty(preGradient.shape[0], w1.shape[1], dtype: preGradient.dtype, device: preGradient.device);
        Run("expert_gemm_kmajor", state, preGradient, w1, nMajor: false, ends, gradient, null, null);
        return gradient;
    }

    /// <summary>
    /// a [R, K] times each group's weights: N-major [E, K, N] or K-major [E, N, K] (the transpose of [E, K, N] as
    /// stored) into <paramref name="output"/> [R, N]. Rows past the last group end are not written. The swapped kernels
    /// take the weights' map first, in boxes of 128 columns, and the rows' in boxes of a whole 160-token tile.
    /// </summary>
    static void Run(string kernel, DeviceState state, Tensor a, Tensor weights, bool nMajor, Tensor ends, Tensor output, Tensor? pre, Tensor? table,
        bool swapped = false)
    {
        if (state.Problem is not null) throw new InvalidOperationException($"the Hopper expert GEMM cannot run: {state.Problem}");
        long rows = a.shape[0];
        if (rows == 0) return;
        a = Aligned(a);
        weights = Aligned(weights);
        long experts = weights.shape[0];
        long k = a.shape[1], n = output.shape[1];
        var rowsMap = TensorMap.Bf16Rows(CudaModule.Address(a), rows, k, swapped ? (int)SwappedTokens : RowBox);
        var weightsMap = nMajor
            ? TensorMap.Bf16Rows(CudaModule.Address(weights), experts * k, n, NMajorWeightBox)
            : TensorMap.Bf16Rows(CudaModule.Address(weights), experts * n, k, swapped ? SwappedColumns : KMajorWeightBox);
        var (firstMap, secondMap) = swapped ? (weightsMap, rowsMap) : (rowsMap, weightsMap);
        IntPtr outAddress = CudaModule.Address(output), preAddress = CudaModule.Address(pre);
        IntPtr tableAddress = CudaModule.Address(table), endsAddress = CudaModule.Address(ends);
        int groups = (int)experts, columns = (int)n, inner = (int)k;
        void** arguments = stackalloc void*[] { &firstMap, &secondMap, &outAddress, &preAddress, &tableAddress, &endsAddress, &groups, &columns, &inner };
        CudaModule.Launch(Kernels.Function(a.device, kernel), a.device, state.Multiprocessors, swapped ? SwappedThreads : Threads,
            swapped ? state.SwappedSharedBytes : state.SharedBytes, arguments);
    }

    /// <summary>Contiguous, and 16-byte aligned as the copy engine needs (a view into a larger tensor may not be).</summary>
    static Tensor Aligned(Tensor tensor)
    {
        tensor = tensor.contiguous();
        return CudaModule.Address(tensor) % 16 == 0 ? tensor : tensor.clone();
    }

    static DeviceState State(Device device) =>
        States.GetOrAdd(CudaDriver.OrdinalOf(device), ordinal => new Lazy<DeviceState>(() => Prepare(device, ordinal))).Value;

    static DeviceState Prepare(Device device, int ordinal)
    {
        try
        {
            int architecture = CudaDriver.ComputeCapability(ordinal);
            if (architecture != 90) return new DeviceState($"compute capability {architecture / 10}.{architecture % 10}: the kernels use Hopper's (9.0) wgmma");
            if (Kernels.Problem(device) is { } problem) return new DeviceState(problem);
            using var scope = torch.NewDisposeScope();
            // Row tiles' and swapped tiles' shared memory.
            var bytes = torch.zeros(2, dtype: ScalarType.Int32, device: device);
            IntPtr bytesAddress = CudaModule.Address(bytes);
            void** query = stackalloc void*[] { &bytesAddress };
            CudaModule.Launch(Kernels.Function(device, "expert_gemm_shared_bytes"), device, 1, 1, 0, query);
            var sizes = bytes.data<int>().ToArray();
            uint shared = (uint)sizes[0], swappedShared = (uint)sizes[1];
            foreach (var (kernel, size) in GemmKernels.Select(k => (k, shared)).Concat(SwappedKernels.Select(k => (k, swappedShared))))
                CudaDriver.Check(CudaDriver.cuFuncSetAttribute(Kernels.Function(device, kernel), CudaDriver.MaxDynamicSharedBytes, (int)size), $"cuFuncSetAttribute {kernel}");
            // gelu' (fp32) and gelu (bf16) of every bf16 bit pattern: kept for the process's lifetime.
            var geluGradient = torch.empty(65536, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
            var gelu = torch.empty(65536, dtype: ScalarType.BFloat16, device: device).DetachFromDisposeScope();
            IntPtr gradientAddress = CudaModule.Address(geluGradient), geluAddress = CudaModule.Address(gelu);
            void** tables = stackalloc void*[] { &gradientAddress, &geluAddress };
            CudaModule.Launch(Kernels.Function(device, "build_gelu_tables"), device, 256, 256, 0, tables);
            var state = new DeviceState(null, shared, swappedShared, (uint)CudaDriver.MultiprocessorCount(ordinal), geluGradient, gelu);
            return SelfCheck(state, device) is { } failure ? new DeviceState($"self-check against float32 failed: {failure}") : state;
        }
        catch (Exception e) when (e is InvalidOperationException or DllNotFoundException or EntryPointNotFoundException or System.Runtime.InteropServices.ExternalException)
        {
            return new DeviceState(e.Message);
        }
    }

    /// <summary>
    /// The four products on uneven groups (one empty, one not a multiple of the 128-row tile, one longer than a swapped
    /// tile), and the swapped tiles' two, against float32 matmuls of the same bf16 values: within 2 % of the largest
    /// magnitude (bf16 rounding of the outputs and of the GELU's input).
    /// </summary>
    static string? SelfCheck(DeviceState state, Device device)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7);
        long[] sizes = [100, 0, 37, 300];
        long m = 256, f = 512, total = sizes.Sum();
        var ends = torch.tensor(sizes.Select((_, e) => (int)sizes.Take(e + 1).Sum()).ToArray(), device: device);
        var rows = torch.randn(total, m, device: device).to_type(ScalarType.BFloat16);
        var w1 = (torch.randn(sizes.Length, m, f, device: device) * 0.1).to_type(ScalarType.BFloat16);
        var w2 = (torch.randn(sizes.Length, f, m, device: device) * 0.1).to_type(ScalarType.BFloat16);
        var gradient = torch.randn(total, m, device: device).to_type(ScalarType.BFloat16);
        var (pre, hidden) = First(state, rows, w1, ends);
        var output = Second(state, hidden, w2, ends);
        var preGradient = PreGradient(state, gradient, w2, pre, ends);
        var rowsGradient = RowsGradient(state, preGradient, w1, ends);
        var (swappedPre, swappedHidden) = First(state, rows, w1, ends, swapped: true);
        var swappedPreGradient = PreGradient(state, gradient, w2, pre, ends, swapped: true);
        Tensor PerGroup(Tensor a, Func<int, Tensor> weight) =>
            torch.cat(a.to_type(ScalarType.Float32).split(sizes, 0).Select((part, e) => part.matmul(weight(e).to_type(ScalarType.Float32))).ToArray(), 0);
        var expectedPre = PerGroup(rows, e => w1[e]);
        var expectedHidden = nn.functional.gelu(pre.to_type(ScalarType.Float32));
        var expectedOutput = PerGroup(hidden, e => w2[e]);
        var dh = PerGroup(gradient, e => w2[e].t()).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
        var expectedPreGradient = GeluBackward(dh, pre.to_type(ScalarType.Float32));
        var expectedRowsGradient = PerGroup(preGradient, e => w1[e].t());
        foreach (var (name, actual, expected) in new[]
        {
            ("pre", pre, expectedPre), ("gelu", hidden, expectedHidden), ("output", output, expectedOutput),
            ("pre gradient", preGradient, expectedPreGradient), ("rows gradient", rowsGradient, expectedRowsGradient),
            ("swapped pre", swappedPre, expectedPre), ("swapped gelu", swappedHidden, expectedHidden),
            ("swapped pre gradient", swappedPreGradient, expectedPreGradient),
        })
        {
            double scale = Math.Max(expected.abs().max().item<float>(), 1e-6);
            double error = (actual.to_type(ScalarType.Float32) - expected).abs().max().item<float>() / scale;
            if (!(error <= 2e-2)) return $"{name} off by {error:G3} of its largest magnitude";
        }
        return null;
    }

    /// <summary>gelu'(x) · gradient by libtorch's own backward of gelu.</summary>
    static Tensor GeluBackward(Tensor gradient, Tensor x)
    {
        using var enabled = torch.enable_grad();
        var input = x.detach().requires_grad_();
        return torch.autograd.grad([nn.functional.gelu(input)], [input], [gradient])[0];
    }
}
