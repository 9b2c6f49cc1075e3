using System.Runtime.InteropServices;
using System.Text;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// CUDA C++ compiled at run time by NVRTC into a cubin for one GPU architecture. The library is looked up where a CUDA
/// PyTorch keeps it (the <c>nvidia</c> wheels beside torch, or torch/lib itself), then in a CUDA toolkit, so a GPU host
/// that runs PyTorch needs nothing else. <see cref="Problem"/> says why it is unavailable.
/// </summary>
public static unsafe class Nvrtc
{
    static readonly Lazy<(IntPtr Handle, string? Problem)> Loaded = new(Load);

    public static bool Available => Loaded.Value.Handle != IntPtr.Zero;

    public static string? Problem => Loaded.Value.Problem;

    /// <summary>The library's version, e.g. "13.0" (part of a compiled kernel's cache key).</summary>
    public static string Version()
    {
        int major, minor;
        Check(((delegate* unmanaged<int*, int*, int>)Export("nvrtcVersion"))(&major, &minor), "nvrtcVersion");
        return $"{major}.{minor}";
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for sm_<paramref name="architecture"/> (e.g. 90), or for sm_90a and the like
    /// when <paramref name="architectureSpecific"/> (instructions of that architecture only, such as Hopper's wgmma);
    /// the compiler's log in the error.
    /// </summary>
    public static byte[] CompileCubin(string source, string name, int architecture, bool architectureSpecific = false)
    {
        var create = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)Export("nvrtcCreateProgram");
        var compile = (delegate* unmanaged<IntPtr, int, byte**, int>)Export("nvrtcCompileProgram");
        var destroy = (delegate* unmanaged<IntPtr*, int>)Export("nvrtcDestroyProgram");
        IntPtr program;
        fixed (byte* text = Utf8(source), file = Utf8(name))
            Check(create(&program, text, file, 0, null, null), "nvrtcCreateProgram");
        try
        {
            string target = $"sm_{architecture}{(architectureSpecific ? "a" : "")}";
            string[] options = [$"--gpu-architecture={target}", "--std=c++17"];
            var encoded = options.Select(Utf8).ToArray();
            var handles = encoded.Select(o => GCHandle.Alloc(o, GCHandleType.Pinned)).ToArray();
            try
            {
                var pointers = stackalloc byte*[options.Length];
                for (int i = 0; i < options.Length; i++) pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                int result = compile(program, options.Length, pointers);
                if (result != 0) throw new InvalidOperationException($"NVRTC could not compile {name} for {target} ({ErrorText(result)}): {Log(program)}");
            }
            finally
            {
                foreach (var handle in handles) handle.Free();
            }
            nuint size;
            Check(((delegate* unmanaged<IntPtr, nuint*, int>)Export("nvrtcGetCUBINSize"))(program, &size), "nvrtcGetCUBINSize");
            var cubin = new byte[size];
            fixed (byte* bytes = cubin)
                Check(((delegate* unmanaged<IntPtr, byte*, int>)Export("nvrtcGetCUBIN"))(program, bytes), "nvrtcGetCUBIN");
            return cubin;
        }
        finally
        {
            destroy(&program);
        }
    }

    static string Log(IntPtr program)
    {
        nuint size;
        if (((delegate* unmanaged<IntPtr, nuint*, int>)Export("nvrtcGetProgramLogSize"))(program, &size) != 0 || size == 0) return "";
        var log = new byte[size];
        fixed (byte* bytes = log) ((delegate* unmanaged<IntPtr, byte*, int>)Export("nvrtcGetProgramLog"))(program, bytes);
        return Encoding.UTF8.GetString(log).TrimEnd('\0', '\n');
    }

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text + "\0");

    static void Check(int result, string what)
    {
        if (result != 0) throw new InvalidOperationException($"{what} failed: {ErrorText(result)}");
    }

    static string ErrorText(int result) =>
        Marshal.PtrToStringAnsi(((delegate* unmanaged<int, IntPtr>)Export("nvrtcGetErrorString"))(result)) ?? $"nvrtcResult {result}";

    static IntPtr Export(string name) =>
        Available ? NativeLibrary.GetExport(Loaded.Value.Handle, name) : throw new InvalidOperationException($"NVRTC is unavailable: {Problem}");

    static (IntPtr, string?) Load()
    {
        var candidates = Candidates().ToList();
        foreach (string path in candidates)
        {
            if (NativeLibrary.TryLoad(path, out var handle)) return (handle, null);
        }
        return (IntPtr.Zero, candidates.Count == 0
            ? $"no libnvrtc.so next to PyTorch ({TorchRuntime.LibTorchVariable}), in CUDA_HOME or in /usr/local/cuda"
            : $"libnvrtc does not load from {string.Join(", ", candidates)}");
    }

    static IEnumerable<string> Candidates()
    {
        var folders = new List<string>();
        string? torchLib = Environment.GetEnvironmentVariable(TorchRuntime.LibTorchVariable);
        if (!string.IsNullOrWhiteSpace(torchLib) && Directory.Exists(torchLib))
        {
            string wheels = Path.GetFullPath(Path.Combine(torchLib, "..", "..", "nvidia"));
            if (Directory.Exists(wheels)) folders.AddRange(Directory.GetDirectories(wheels).Select(d => Path.Combine(d, "lib")));
            folders.Add(torchLib);
        }
        string? home = Environment.GetEnvironmentVariable("CUDA_HOME");
        if (!string.IsNullOrWhiteSpace(home)) folders.Add(Path.Combine(home, "lib64"));
        folders.Add("/usr/local/cuda/lib64");
        // libnvrtc.so.13, libnvrtc-<hash>.so.12 (torch/lib), not libnvrtc-builtins (loaded by NVRTC itself).
        return folders.Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d, "libnvrtc*.so*"))
            .Where(f => !Path.GetFileName(f).Contains("builtins", StringComparison.Ordinal) && !f.EndsWith(".alt.so", StringComparison.Ordinal))
            .Distinct();
    }
}
