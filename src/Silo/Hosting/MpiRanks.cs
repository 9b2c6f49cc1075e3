using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Mpi;

namespace Orleans.MoE.Silo.Hosting;

/// <summary>The MPI side of a silo started by mpiexec: its rank, and the world its jobs' ranks exchange tensors in.</summary>
public static class MpiRanks
{
    /// <summary>Initialises MPI (once per process) and returns this process's rank.</summary>
    public static int Initialise()
    {
        if (!MpiRuntime.IsUnderMpiexec)
            throw new InvalidOperationException("Moe:Mpi=true, but this process was not started by mpiexec (no PMI_RANK); start the silos with `mpiexec.mpich -n N`");
        return MpiRuntime.World.Rank;
    }

    /// <summary>The MPI world, checked against the size of the plan that wants it.</summary>
    public static ICommunicator World(int planRanks)
    {
        var world = MpiRuntime.World;
        if (world.Size != planRanks)
            throw new NotSupportedException($"the job's plan has {planRanks} ranks but mpiexec started {world.Size}; an MPI job runs on every silo of the launch");
        return world;
    }
}
