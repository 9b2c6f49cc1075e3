namespace Orleans.MoE.Grains.Placement;

/// <summary>Silo metadata every MoE silo publishes (Orleans silo metadata; the dashboard shows it too).</summary>
public static class SiloMetadataKeys
{
    /// <summary>The silo's name, the one execution plans use.</summary>
    public const string Silo = "moe.silo";

    public const string Node = "moe.node";

    /// <summary>Host and process id: silos of one process exchange tensors through shared memory.</summary>
    public const string Process = "moe.process";

    /// <summary>The silo's MPI rank when it was started by mpiexec (its jobs exchange tensors over MPI).</summary>
    public const string MpiRank = "moe.mpi_rank";
    public const string Device = "moe.device";
    public const string MemoryBytes = "moe.memory_bytes";
}
