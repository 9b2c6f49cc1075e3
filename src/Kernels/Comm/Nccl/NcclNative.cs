using System.Runtime.InteropServices;

namespace Orleans.MoE.Kernels.Comm.Nccl;

/// <summary>
/// The project's binding to NCCL (<c>libnccl.so.2</c>, 2.28 on the GPU hosts). Every collective is enqueued on the
/// stream passed last; the data plane passes the legacy default stream (0), which is where TorchSharp's work runs,
/// so NCCL reads tensors after the kernels that wrote them.
/// </summary>
static unsafe partial class NcclNative
{
    const string Library = "libnccl.so.2";

    public const int Success = 0;
    public const int InProgress = 7;

    [LibraryImport(Library)] public static partial int ncclGetUniqueId(NcclUniqueId* id);
    [LibraryImport(Library)] public static partial int ncclCommInitRank(out IntPtr comm, int size, NcclUniqueId id, int rank);
    [LibraryImport(Library)] public static partial int ncclCommSplit(IntPtr comm, int color, int key, out IntPtr created, IntPtr config);
    [LibraryImport(Library)] public static partial int ncclCommUserRank(IntPtr comm, out int rank);
    [LibraryImport(Library)] public static partial int ncclCommCount(IntPtr comm, out int size);
    [LibraryImport(Library)] public static partial int ncclCommGetAsyncError(IntPtr comm, out int error);
    [LibraryImport(Library)] public static partial int ncclCommAbort(IntPtr comm);
    [LibraryImport(Library)] public static partial int ncclCommDestroy(IntPtr comm);
    [LibraryImport(Library)] public static partial IntPtr ncclGetErrorString(int result);
    [LibraryImport(Library)] public static partial IntPtr ncclGetLastError(IntPtr comm);
    [LibraryImport(Library)] public static partial int ncclGroupStart();
    [LibraryImport(Library)] public static partial int ncclGroupEnd();

    [LibraryImport(Library)]
    public static partial int ncclAllReduce(IntPtr send, IntPtr receive, nuint count, int type, int op, IntPtr comm, IntPtr stream);

    [LibraryImport(Library)]
    public static partial int ncclAllGather(IntPtr send, IntPtr receive, nuint sendCount, int type, IntPtr comm, IntPtr stream);

    [LibraryImport(Library)]
    public static partial int ncclReduceScatter(IntPtr send, IntPtr receive, nuint receiveCount, int type, int op, IntPtr comm, IntPtr stream);

    [LibraryImport(Library)]
    public static partial int ncclBroadcast(IntPtr send, IntPtr receive, nuint count, int type, int root, IntPtr comm, IntPtr stream);

    [LibraryImport(Library)]
    public static partial int ncclSend(IntPtr send, nuint count, int type, int peer, IntPtr comm, IntPtr stream);

    [LibraryImport(Library)]
    public static partial int ncclRecv(IntPtr receive, nuint count, int type, int peer, IntPtr comm, IntPtr stream);

    /// <summary>NCCL's message for a result code, plus the communicator's last error when there is one.</summary>
    public static string Describe(int result, IntPtr comm)
    {
        string text = Marshal.PtrToStringAnsi(ncclGetErrorString(result)) ?? $"result {result}";
        string? last = comm == 0 ? null : Marshal.PtrToStringAnsi(ncclGetLastError(comm));
        return string.IsNullOrEmpty(last) ? text : $"{text}: {last}";
    }
}
