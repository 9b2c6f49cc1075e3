using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// The communicator over all ranks of a plan (a job's generation, or a serving replica), by the data plane the
/// control plane chose for its silos. Joining is collective: every rank joins with the same key, size and id.
/// </summary>
public static class DataPlaneWorld
{
    /// <param name="kind">"shared-memory" (silos of one process), "mpi" (the silos of one mpiexec launch) or "nccl" (GPU silos).</param>
    /// <param name="key">The shared-memory rendezvous key: one per plan, so a later plan never meets an earlier one's ranks.</param>
    /// <param name="ncclId">Rank 0's NCCL unique id (NCCL only).</param>
    public static ICommunicator Join(string kind, string key, int size, int rank, byte[]? ncclId, int deviceIndex) => kind switch
    {
        "shared-memory" => SharedMemoryRendezvous.Join(key, size, rank),
        "mpi" => MpiRanks.World(size),
        "nccl" => NcclCommunicator.Create(
            NcclUniqueId.FromBytes(ncclId ?? throw new InvalidOperationException($"the NCCL plan '{key}' carries no unique id from its rank 0")),
            rank, size, deviceIndex),
        _ => throw new NotSupportedException($"plan '{key}' names an unknown data plane '{kind}'"),
    };
}
