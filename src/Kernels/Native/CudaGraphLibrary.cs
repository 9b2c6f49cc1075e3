using System.Diagnostics;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// Builds and loads the CUDA helper (<c>cuda_graph.cpp</c> and <c>expert_bmm.cpp</c>, embedded in this assembly):
/// TorchSharp has no CUDA graphs, no GEMM over device-chosen experts and no cuBLASLt; libtorch, cuBLAS and cuBLASLt
/// do, and only the C++ API reaches them. The helper is compiled once per PyTorch installation
/// with the host's C++ compiler against that installation's headers (pip wheels ship them) and kept in the cache
/// folder, named by a hash of the source and the libtorch it was built for. Where anything is missing, nothing is
/// captured and <see cref="Problem"/> says why; callers then run the same forwards eagerly.
/// </summary>
public static class CudaGraphLibrary
{
    // The entry points (cuda_graph.cpp) first; the other files are what it includes and links.
    static readonly string[] Sources = ["cuda_graph.cpp", "expert_bmm.cpp", "expert_bmm.h"];
    static readonly Lazy<(IntPtr Handle, string? Problem)> Loaded = new(Load);

    /// <summary>True when the helper is built and loaded.</summary>
    public static bool Available => Loaded.Value.Handle != IntPtr.Zero;

    /// <summary>Why graphs are unavailable (null when they are).</summary>
    public static string? Problem => Loaded.Value.Problem;

    static unsafe string LastError() =>
        Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)Export("moe_graph_last_error"))()) ?? "unknown error";

    /// <summary>The error of a failed call into the helper, with what the helper kept of the C++ exception.</summary>
    internal static InvalidOperationException Failure(string what) => new($"{what} failed: {LastError()}");

    /// <summary>A tensor an entry point returned (a new at::Tensor* that TorchSharp takes over), or its <see cref="Failure"/> for null.</summary>
    internal static Tensor TakeTensor(IntPtr result, string what) =>
        result == IntPtr.Zero ? throw Failure(what) : Tensor.UnsafeCreateTensor(result);

    /// <summary>
    /// The stream libtorch runs on for <paramref name="ordinal"/> from this thread (a graph's capture stream while one is
    /// captured, the stream autograd picked inside a backward); the legacy default stream, TorchSharp's, without the helper.
    /// </summary>
    internal static unsafe IntPtr CurrentStream(int ordinal) =>
        Available ? ((delegate* unmanaged<int, IntPtr>)CurrentStreamEntry.Value)(ordinal) : CudaDriver.DefaultStream;

    static readonly Lazy<IntPtr> CurrentStreamEntry = new(() => Export("moe_current_stream"));

    internal static IntPtr Export(string name) =>
        Available ? NativeLibrary.GetExport(Loaded.Value.Handle, name) : throw new InvalidOperationException($"CUDA graphs are unavailable: {Problem}");

    static (IntPtr, string?) Load()
    {
        string? lib = Environment.GetEnvironmentVariable(TorchRuntime.LibTorchVariable);
        if (string.IsNullOrWhiteSpace(lib) || !File.Exists(Path.Combine(lib, "libtorch_cuda.so")))
            return (IntPtr.Zero, $"{TorchRuntime.LibTorchVariable} does not name a CUDA PyTorch's torch/lib");
        string include = Path.GetFullPath(Path.Combine(lib, "..", "include"));
        if (!File.Exists(Path.Combine(include, "ATen", "cuda", "CUDAGraph.h")))
            return (IntPtr.Zero, $"no PyTorch C++ headers at {include}");
        var cuda = CudaRuntimeFiles(lib);
        if (cuda is null) return (IntPtr.Zero, "no CUDA runtime and cuBLAS headers and libraries (cuda_runtime_api.h, cublas_v2.h, cublasLt.h, libcudart, libcublas, libcublasLt) next to PyTorch or in CUDA_HOME");
        var sources = Sources.ToDictionary(name => name, EmbeddedSource.Read);
        string built = EmbeddedSource.CachePath("cuda-graph", string.Concat(sources.Values), Path.GetFullPath(lib) + "\n" + File.GetLastWriteTimeUtc(Path.Combine(lib, "libtorch_cuda.so")).Ticks, ".so");
        if (!File.Exists(built))
        {
            string? problem = Compile(sources, Path.GetDirectoryName(built)!, built, include, lib, cuda.Value);
            if (problem is not null) return (IntPtr.Zero, problem);
        }
        try
        {
            return (NativeLibrary.Load(built), null);
        }
        catch (DllNotFoundException e)
        {
            return (IntPtr.Zero, $"{built} does not load: {e.Message}");
        }
    }

    /// <summary>
    /// The CUDA runtime's and cuBLAS's headers and libraries. The libraries are preferably the copies PyTorch's wheels
    /// installed (the ones libtorch already loaded: a second runtime in the process would keep its own state); the headers
    /// preferably a toolkit's, since the wheels' include folder lacks some of what cuda_runtime.h includes.
    /// </summary>
    static (string Include, string[] Libraries)? CudaRuntimeFiles(string torchLib)
    {
        var toolkits = new List<string>();
        string? home = Environment.GetEnvironmentVariable("CUDA_HOME");
        if (!string.IsNullOrWhiteSpace(home)) toolkits.Add(home);
        toolkits.Add("/usr/local/cuda");
        string wheels = Path.GetFullPath(Path.Combine(torchLib, "..", "..", "nvidia"));
        var wheelRoots = Directory.Exists(wheels) ? Directory.GetDirectories(wheels) : [];
        string? include = toolkits.Concat(wheelRoots).Select(r => Path.Combine(r, "include"))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "cuda_runtime_api.h")) && File.Exists(Path.Combine(d, "crt", "host_config.h")) && File.Exists(Path.Combine(d, "cublas_v2.h")) && File.Exists(Path.Combine(d, "cublasLt.h")));
        var folders = wheelRoots.Concat(toolkits).SelectMany(r => new[] { Path.Combine(r, "lib"), Path.Combine(r, "lib64") }).Where(Directory.Exists).ToArray();
        string? Library(string name) => folders.SelectMany(d => Directory.GetFiles(d, name + ".so*")).OrderBy(f => f.Length).FirstOrDefault();
        string? runtime = Library("libcudart"), blas = Library("libcublas"), blasLt = Library("libcublasLt");
        return include is null || runtime is null || blas is null || blasLt is null ? null : (include, [runtime, blas, blasLt]);
    }

    static string? Compile(Dictionary<string, string> sources, string folder, string built, string include, string lib, (string Include, string[] Libraries) cuda)
    {
        // The sources go to a folder of this process's own, so that builds in other processes cannot mix files.
        string work = Path.Combine(folder, $"cuda-graph-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        foreach (var (name, text) in sources) File.WriteAllText(Path.Combine(work, name), text);
        string output = Path.Combine(work, "cuda-graph.so");
        string cudaLibs = string.Join(':', cuda.Libraries.Select(Path.GetDirectoryName).Distinct());
        string[] arguments =
        [
            "-O2", "-std=c++17", "-shared", "-fPIC", "-o", output,
            .. sources.Keys.Where(name => name.EndsWith(".cpp", StringComparison.Ordinal)).Select(name => Path.Combine(work, name)),
            "-I" + include, "-I" + Path.Combine(include, "torch", "csrc", "api", "include"), "-I" + cuda.Include,
            "-L" + lib, "-lc10", "-lc10_cuda", "-ltorch_cpu", "-ltorch_cuda", .. cuda.Libraries,
            $"-Wl,-rpath,{lib}:{cudaLibs}",
        ];
        Console.Error.WriteLine($"building the CUDA graph helper against {lib} (once per PyTorch installation) …");
        try
        {
            var start = new ProcessStartInfo("c++") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (string argument in arguments) start.ArgumentList.Add(argument);
            using var process = Process.Start(start)!;
            var errors = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                string text = errors.Result;
                return $"c++ failed to build {string.Join(", ", sources.Keys)} ({process.ExitCode}): {text[Math.Max(0, text.Length - 1500)..]}";
            }
            File.Move(output, built, overwrite: true);
            return null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "no C++ compiler (c++) on PATH";
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
