namespace Orleans.MoE.Kernels.Native;

/// <summary>
/// One CUDA graph (libtorch's, through <see cref="CudaGraphLibrary"/>): operations issued inside <see cref="Capture"/>
/// are recorded, not run, and <see cref="Replay"/> runs them all as one launch on the current stream. A replay reads
/// and writes the very tensors the capture used, so inputs are refilled in place and outputs read after each replay.
/// Nothing captured may read back to the host or copy from it.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    static readonly delegate* unmanaged<int, IntPtr> Create = (delegate* unmanaged<int, IntPtr>)CudaGraphLibrary.Export("moe_graph_create");
    static readonly delegate* unmanaged<IntPtr, int> Enter = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_enter");
    static readonly delegate* unmanaged<IntPtr, int> Leave = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_leave");
    static readonly delegate* unmanaged<IntPtr, int> Begin = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_capture_begin");
    static readonly delegate* unmanaged<IntPtr, int> End = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_capture_end");
    static readonly delegate* unmanaged<IntPtr, int> Abort = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_capture_abort");
    static readonly delegate* unmanaged<IntPtr, int> Launch = (delegate* unmanaged<IntPtr, int>)CudaGraphLibrary.Export("moe_graph_replay");
    static readonly delegate* unmanaged<IntPtr, void> Destroy = (delegate* unmanaged<IntPtr, void>)CudaGraphLibrary.Export("moe_graph_destroy");
    static readonly delegate* unmanaged<IntPtr, IntPtr> CreateSharing = (delegate* unmanaged<IntPtr, IntPtr>)CudaGraphLibrary.Export("moe_graph_create_sharing");
    static readonly delegate* unmanaged<int> EmptyCache = (delegate* unmanaged<int>)CudaGraphLibrary.Export("moe_release_cached_memory");
    static readonly delegate* unmanaged<IntPtr, long*, long*, void> Nodes = (delegate* unmanaged<IntPtr, long*, long*, void>)CudaGraphLibrary.Export("moe_graph_nodes");

    IntPtr handle;
    bool captured;

    public CudaGraph(int device)
    {
        handle = Create(device);
        if (handle == IntPtr.Zero) throw CudaGraphLibrary.Failure("creating a CUDA graph");
    }

    CudaGraph(IntPtr handle) => this.handle = handle;

    /// <summary>
    /// A graph captured on this one's stream and into its memory pool: a backward captured after this forward, since
    /// autograd runs each backward operation on the stream its forward ran on. Call after this graph is captured.
    /// </summary>
    public CudaGraph Sharing()
    {
        if (!captured) throw new InvalidOperationException("a graph shares the stream and pool of a captured graph only");
        var created = CreateSharing(handle);
        return created == IntPtr.Zero ? throw CudaGraphLibrary.Failure("creating a CUDA graph") : new CudaGraph(created);
    }

    /// <summary>Kernels and other operations (copies, memsets) the capture recorded: the launches of one eager run.</summary>
    public (long Kernels, long Others) Operations
    {
        get
        {
            long kernels = 0, others = 0;
            Nodes(handle, &kernels, &others);
            return (kernels, others);
        }
    }

    /// <summary>Runs <paramref name="warmUp"/> eagerly on the graph's stream (lazy initialisation happens before capture).</summary>
    public void OnGraphStream(Action warmUp)
    {
        Check(Enter(handle), "switching to the graph's stream");
        try
        {
            warmUp();
        }
        finally
        {
            Check(Leave(handle), "switching back from the graph's stream");
        }
    }

    /// <summary>Records what <paramref name="body"/> issues; returns its result, whose tensors each replay rewrites.</summary>
    public T Capture<T>(Func<T> body)
    {
        if (captured) throw new InvalidOperationException("this graph is already captured");
        Check(Begin(handle), "beginning a CUDA graph capture");
        T result;
        try
        {
            result = body();
        }
        catch
        {
            Abort(handle);
            throw;
        }
        Check(End(handle), "ending a CUDA graph capture");
        captured = true;
        return result;
    }

    /// <summary>
    /// Returns the caching allocator's unused blocks to the driver: what warm-up runs freed on a capture stream is
    /// otherwise cached for that stream alone (tens of GiB for a large MoE layer).
    /// </summary>
    public static void ReleaseCachedMemory() => Check(EmptyCache(), "releasing cached GPU memory");

    public void Replay()
    {
        if (!captured) throw new InvalidOperationException("nothing is captured in this graph");
        Check(Launch(handle), "replaying a CUDA graph");
    }

    public void Dispose()
    {
        if (handle == IntPtr.Zero) return;
        Destroy(handle);
        handle = IntPtr.Zero;
    }

    static void Check(int result, string what)
    {
        if (result != 0) throw CudaGraphLibrary.Failure(what);
    }
}
