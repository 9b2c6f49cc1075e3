using System.Runtime.InteropServices;

namespace Orleans.MoE.Kernels.Comm.Mpi;

/// <summary>
/// The MPICH entry points the data plane uses, called with tensor addresses directly (MPI.NET's API takes managed
/// arrays, which would copy every tensor). Handles are MPICH's: communicators, datatypes and operations are ints.
/// </summary>
static partial class MpiNative
{
    const string Library = "libmpich.so.12";

    public const int CommWorld = 0x44000000;
    public const int Byte = 0x4c00010d;
    public const int Float = 0x4c00040a;
    public const int Double = 0x4c00080b;
    public const int Int32 = 0x4c000439;
    public const int Int64 = 0x4c00083a;
    public const int Max = 0x58000001;
    public const int Sum = 0x58000003;
    public const int ThreadSerialized = 2;
    public const int ThreadMultiple = 3;
    public static readonly IntPtr InPlace = -1;
    public static readonly IntPtr StatusIgnore = 1;

    [LibraryImport(Library)] public static partial int MPI_Initialized(out int flag);
    [LibraryImport(Library)] public static partial int MPI_Finalized(out int flag);
    [LibraryImport(Library)] public static partial int MPI_Init_thread(IntPtr argc, IntPtr argv, int required, out int provided);
    [LibraryImport(Library)] public static partial int MPI_Finalize();
    [LibraryImport(Library)] public static partial int MPI_Abort(int comm, int errorCode);
    [LibraryImport(Library)] public static partial int MPI_Comm_rank(int comm, out int rank);
    [LibraryImport(Library)] public static partial int MPI_Comm_size(int comm, out int size);
    [LibraryImport(Library)] public static partial int MPI_Comm_split(int comm, int color, int key, out int created);
    [LibraryImport(Library)] public static partial int MPI_Comm_free(ref int comm);
    [LibraryImport(Library)] public static partial int MPI_Barrier(int comm);
    [LibraryImport(Library)] public static partial int MPI_Type_contiguous(int count, int element, out int created);
    [LibraryImport(Library)] public static partial int MPI_Type_commit(ref int type);
    [LibraryImport(Library)] public static partial int MPI_Type_free(ref int type);

    [LibraryImport(Library)]
    public static partial int MPI_Alltoallv(IntPtr send, int[] sendCounts, int[] sendOffsets, int sendType,
        IntPtr receive, int[] receiveCounts, int[] receiveOffsets, int receiveType, int comm);

    [LibraryImport(Library)] public static partial int MPI_Allreduce(IntPtr send, IntPtr receive, int count, int type, int op, int comm);
    [LibraryImport(Library)] public static partial int MPI_Reduce(IntPtr send, IntPtr receive, int count, int type, int op, int root, int comm);
    [LibraryImport(Library)] public static partial int MPI_Allgather(IntPtr send, int sendCount, int sendType, IntPtr receive, int receiveCount, int receiveType, int comm);
    [LibraryImport(Library)] public static partial int MPI_Reduce_scatter_block(IntPtr send, IntPtr receive, int count, int type, int op, int comm);
    [LibraryImport(Library)] public static partial int MPI_Bcast(IntPtr buffer, int count, int type, int root, int comm);
    [LibraryImport(Library)] public static partial int MPI_Send(IntPtr buffer, int count, int type, int peer, int tag, int comm);
    [LibraryImport(Library)] public static partial int MPI_Recv(IntPtr buffer, int count, int type, int peer, int tag, int comm, IntPtr status);
    [LibraryImport(Library)] public static unsafe partial int MPI_Error_string(int code, byte* text, out int length);

    /// <summary>Throws with MPICH's own message when a call did not succeed.</summary>
    public static void Check(int code, string what)
    {
        if (code != 0) throw new InvalidOperationException($"MPI {what} failed: {ErrorText(code)} (code {code})");
    }

    static unsafe string ErrorText(int code)
    {
        var text = stackalloc byte[512];
        return MPI_Error_string(code, text, out int length) == 0 ? System.Text.Encoding.ASCII.GetString(text, length) : "unknown error";
    }
}
