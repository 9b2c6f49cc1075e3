using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// An embedded CUDA source (routing.cu, expert_gemm.cu), compiled by <see cref="Nvrtc"/> once per GPU architecture (the
/// cubin is kept in the cache folder) and loaded into each device's primary context; its kernels are launched through
/// the driver API on the stream libtorch runs on from the calling thread, so they take their place in captured CUDA
/// graphs and in autograd's backward like any ATen kernel. <paramref name="architectureSpecific"/> compiles for the
/// device's exact architecture (sm_90a), whose instructions (wgmma) no other GPU runs.
/// </summary>
sealed unsafe class CudaModule(string source, IReadOnlyList<string> functions, bool architectureSpecific = false)
{
    readonly ConcurrentDictionary<int, Lazy<Loaded>> devices = new();

    /// <summary>The loaded functions by name, or why there are none.</summary>
    sealed record Loaded(IReadOnlyDictionary<string, IntPtr> Functions, string? Problem);

    /// <summary>Why the kernels cannot run on <paramref name="device"/> (null when they can).</summary>
    public string? Problem(Device device) => device.type != DeviceType.CUDA ? "not a CUDA device" : For(device).Problem;

    public IntPtr Function(Device device, string name) => For(device).Functions[name];

    /// <summary>The variant of <paramref name="name"/> for <paramref name="dtype"/> (fp32 or bf16).</summary>
    public IntPtr Function(Device device, string name, ScalarType dtype) =>
        Function(device, name + (dtype == ScalarType.BFloat16 ? "_bf16" : "_f32"));

    public static void Launch(IntPtr function, Device device, uint blocks, int threads, uint sharedBytes, void** arguments) =>
        Launch(function, device, (blocks, 1), threads, sharedBytes, arguments);

    /// <summary>A launch on a grid of <paramref name="blocks"/>.X × <paramref name="blocks"/>.Y blocks.</summary>
    public static void Launch(IntPtr function, Device device, (uint X, uint Y) blocks, int threads, uint sharedBytes, void** arguments)
    {
        int ordinal = CudaDriver.OrdinalOf(device);
        CudaDriver.MakeCurrent(ordinal);
        CudaDriver.Check(CudaDriver.cuLaunchKernel(function, blocks.X, blocks.Y, 1, (uint)threads, 1, 1, sharedBytes, CudaGraphLibrary.CurrentStream(ordinal), arguments, null), "cuLaunchKernel");
    }

    /// <summary>The device address of <paramref name="tensor"/>'s data (zero when it has none, or is missing: a kernel's
    /// optional argument).</summary>
    public static IntPtr Address(Tensor? tensor) => tensor is null || tensor.numel() == 0 ? IntPtr.Zero : TensorPointer.Of(tensor, "a fused kernel's tensor");

    Loaded For(Device device) => devices.GetOrAdd(CudaDriver.OrdinalOf(device), o => new Lazy<Loaded>(() => Build(o))).Value;

    Loaded Build(int ordinal)
    {
        if (!Nvrtc.Available) return Failed($"NVRTC: {Nvrtc.Problem}");
        try
        {
            int architecture = CudaDriver.ComputeCapability(ordinal);
            byte[] cubin = Cubin(architecture);
            CudaDriver.MakeCurrent(ordinal);
            IntPtr module;
            fixed (byte* image = cubin) CudaDriver.Check(CudaDriver.cuModuleLoadData(out module, (IntPtr)image), $"cuModuleLoadData ({source})");
            var loaded = new Dictionary<string, IntPtr>();
            foreach (string name in functions)
            {
                CudaDriver.Check(CudaDriver.cuModuleGetFunction(out IntPtr function, module, name), $"cuModuleGetFunction {name}");
                loaded[name] = function;
            }
            return new Loaded(loaded, null);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or DllNotFoundException or EntryPointNotFoundException)
        {
            return Failed(e.Message);
        }
    }

    static Loaded Failed(string problem) => new(new Dictionary<string, IntPtr>(), problem);

    /// <summary>The cubin for one architecture, compiled once and kept under the cache folder (written to a temporary name and renamed).</summary>
    byte[] Cubin(int architecture)
    {
        string text = EmbeddedSource.Read(source);
        string target = $"sm{architecture}{(architectureSpecific ? "a" : "")}";
        string path = EmbeddedSource.CachePath(Path.GetFileNameWithoutExtension(source), text, Nvrtc.Version(), $"-{target}.cubin");
        if (File.Exists(path)) return File.ReadAllBytes(path);
        byte[] cubin = Nvrtc.CompileCubin(text, source, architecture, architectureSpecific);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temporary, cubin);
        File.Move(temporary, path, overwrite: true);
        return cubin;
    }
}
