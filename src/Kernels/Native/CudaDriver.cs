using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// The few CUDA driver API calls the data plane needs, from <c>libcuda.so.1</c>: every GPU host has it, whatever
/// CUDA runtime version PyTorch ships, so nothing has to be searched for. Making a device's primary context current
/// on a thread is what <c>cudaSetDevice</c> does: the CUDA runtime (libtorch's and NCCL's) then uses that device on
/// this thread. TorchSharp has no <c>set_device</c>, and its operations restore the previous device afterwards.
/// </summary>
public static partial class CudaDriver
{
    const string Library = "libcuda.so.1";

    /// <summary>CUDA_ERROR_NOT_READY: the queried stream or event still has work pending.</summary>
    public const int NotReady = 600;

    /// <summary>The legacy default stream, the one TorchSharp's operations run on.</summary>
    public static readonly IntPtr DefaultStream = IntPtr.Zero;

    static readonly ConcurrentDictionary<int, IntPtr> PrimaryContexts = new();
    static readonly Lazy<int> Initialised = new(() => cuInit(0));

    [LibraryImport(Library)] private static partial int cuInit(uint flags);
    [LibraryImport(Library)] private static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] private static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Library)] private static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Library)] private static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(Library)] public static partial int cuStreamQuery(IntPtr stream);
    [LibraryImport(Library)] public static partial int cuEventCreate(out IntPtr cudaEvent, uint flags);
    [LibraryImport(Library)] public static partial int cuEventRecord(IntPtr cudaEvent, IntPtr stream);
    [LibraryImport(Library)] public static partial int cuEventQuery(IntPtr cudaEvent);
    [LibraryImport(Library)] public static partial int cuEventDestroy_v2(IntPtr cudaEvent);
    [LibraryImport(Library)] private static partial int cuGetErrorString(int result, out IntPtr text);
    [LibraryImport(Library)] private static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Library)] public static partial int cuModuleLoadData(out IntPtr module, IntPtr image);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);
    [LibraryImport(Library)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    [LibraryImport(Library)]
    public static unsafe partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, IntPtr globalAddress, ulong* globalDim,
        ulong* globalStrides, uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int outOfBoundsFill);
    [LibraryImport(Library)]
    public static unsafe partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, IntPtr stream, void** parameters, void** extra);

    /// <summary>CU_EVENT_DISABLE_TIMING: events only mark completion, which makes recording them cheaper.</summary>
    public const uint EventWithoutTiming = 2;

    /// <summary>CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: a kernel gets more than 48 KB only after raising it.</summary>
    public const int MaxDynamicSharedBytes = 8;

    /// <summary>GPUs the driver sees (0 when there is no driver).</summary>
    public static int DeviceCount()
    {
        try
        {
            return Initialised.Value == 0 && cuDeviceGetCount(out int count) == 0 ? count : 0;
        }
        catch (DllNotFoundException)
        {
            return 0;
        }
    }

    /// <summary>The ordinal of a TorchSharp CUDA device (plain "cuda", index -1, is device 0).</summary>
    public static int OrdinalOf(Device device) => device.index < 0 ? 0 : device.index;

    /// <summary>Makes <paramref name="ordinal"/>'s primary context current on the calling thread.</summary>
    public static void MakeCurrent(int ordinal) => Check(cuCtxSetCurrent(PrimaryContext(ordinal)), "cuCtxSetCurrent");

    /// <summary>The device's compute capability as one number (9.0 → 90), which names its cubin architecture.</summary>
    public static int ComputeCapability(int ordinal) => Attribute(ordinal, 75) * 10 + Attribute(ordinal, 76);

    /// <summary>The device's streaming multiprocessors (a persistent kernel's grid).</summary>
    public static int MultiprocessorCount(int ordinal) => Attribute(ordinal, 16);

    /// <summary>One CU_DEVICE_ATTRIBUTE_* of device <paramref name="ordinal"/>.</summary>
    static int Attribute(int ordinal, int attribute)
    {
        Check(Initialised.Value, "cuInit");
        Check(cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        Check(cuDeviceGetAttribute(out int value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    public static void Check(int result, string what)
    {
        if (result != 0) throw new InvalidOperationException($"{what} failed: {ErrorText(result)} (CUresult {result})");
    }

    static IntPtr PrimaryContext(int ordinal) => PrimaryContexts.GetOrAdd(ordinal, o =>
    {
        Check(Initialised.Value, "cuInit");
        Check(cuDeviceGet(out int device, o), "cuDeviceGet");
        Check(cuDevicePrimaryCtxRetain(out IntPtr context, device), "cuDevicePrimaryCtxRetain");
        return context;
    });

    static string ErrorText(int result) =>
        cuGetErrorString(result, out IntPtr text) == 0 && text != 0 ? Marshal.PtrToStringAnsi(text) ?? "?" : "unknown error";
}
