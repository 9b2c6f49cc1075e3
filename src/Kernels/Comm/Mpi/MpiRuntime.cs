namespace Orleans.MoE.Kernels.Comm.Mpi;

/// <summary>
/// MPI for this process: initialised once (MPI allows one MPI_Init per process), finalised when the process exits.
/// A rank that dies with an unhandled exception calls MPI_Abort, which makes mpiexec end every rank: without it the
/// others would wait forever inside their next collective.
/// </summary>
public static class MpiRuntime
{
    static readonly Lock Gate = new();
    static MpiCommunicator? world;

    /// <summary>True when this process was started by mpiexec (Hydra's PMI variables are set).</summary>
    public static bool IsUnderMpiexec =>
        new[] { "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID" }.Any(v => Environment.GetEnvironmentVariable(v) is not null);

    /// <summary>
    /// Whether several threads may call MPI at once (MPI_THREAD_MULTIPLE). When false, MPICH granted only
    /// MPI_THREAD_SERIALIZED: one thread at a time must call, as the device executor does.
    /// </summary>
    public static bool ThreadMultiple { get; private set; }

    /// <summary>All ranks of the job, initialising MPI on first use.</summary>
    public static ICommunicator World
    {
        get
        {
            lock (Gate)
            {
                return world ??= Initialise();
            }
        }
    }

    /// <summary>Ends every rank of the job (MPI_Abort) after writing the cause to stderr; does not return.</summary>
    public static void Abort(Exception cause)
    {
        Console.Error.WriteLine($"MPI rank {Environment.GetEnvironmentVariable("PMI_RANK") ?? "?"} aborted the job: {cause}");
        Console.Error.Flush();
        MpiNative.MPI_Abort(MpiNative.CommWorld, 1);
        Environment.Exit(1);
    }

    static MpiCommunicator Initialise()
    {
        MpiNative.Check(MpiNative.MPI_Initialized(out int initialised), "Initialized");
        if (initialised == 0)
        {
            MpiNative.Check(MpiNative.MPI_Init_thread(0, 0, MpiNative.ThreadMultiple, out int provided), "Init_thread");
            if (provided < MpiNative.ThreadSerialized)
                throw new InvalidOperationException($"MPICH granted thread level {provided}; the data plane needs MPI_THREAD_SERIALIZED or more");
            ThreadMultiple = provided >= MpiNative.ThreadMultiple;
            AppDomain.CurrentDomain.ProcessExit += (_, _) => Finalise();
            AppDomain.CurrentDomain.UnhandledException += (_, e) => Abort(e.ExceptionObject as Exception ?? new InvalidOperationException("unknown failure"));
        }
        return new MpiCommunicator(MpiNative.CommWorld, owned: false);
    }

    static void Finalise()
    {
        MpiNative.MPI_Finalized(out int finalised);
        if (finalised == 0) MpiNative.MPI_Finalize();
    }
}
