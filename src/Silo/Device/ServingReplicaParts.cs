using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Comm.Nccl;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Native;
using Orleans.MoE.Kernels.Serving;
using Orleans.MoE.Kernels.Tokenizers;

namespace Orleans.MoE.Silo.Device;

/// <summary>
/// What this silo holds of a serving replica, built on the device executor: the whole model for a one-silo replica;
/// for a replica of several silos, the replica's communicator, its serving groups, this rank's slice of the model and
/// the rank that runs the leader's forwards in lockstep.
/// </summary>
public sealed class ServingReplicaParts : IDisposable
{
    ServingReplicaParts(GptModel model, ITextTokenizer tokenizer, TorchSharp.torch.Device device)
    {
        Model = model;
        Tokenizer = tokenizer;
        Device = device;
    }

    public GptModel Model { get; }
    public ITextTokenizer Tokenizer { get; }
    public TorchSharp.torch.Device Device { get; }

    /// <summary>The lockstep rank of a replica of several silos (null for a one-silo replica).</summary>
    public ReplicaRank? Rank { get; private set; }

    ICommunicator? world;
    ServingGroups? groups;
    string? sharedMemoryKey;

    public static ServingReplicaParts Build(DeploymentSpec spec, ServingRole role, string siloDevice)
    {
        var saved = ModelCheckpoint.Open(spec.Checkpoint);
        var device = TorchRuntime.ResolveDevice(spec.Device ?? (siloDevice == "auto" ? saved.Config.Device : siloDevice));
        if (role.Members.Count == 1) return new ServingReplicaParts(saved.LoadModel(device), saved.Tokenizer, device);

        var perNode = role.Members.GroupBy(m => m.Node).Select(g => g.Count()).Distinct().ToArray();
        var layout = new ServingLayout(spec.TensorSlicing, spec.ExpertParallel)
        {
            HierarchicalAllToAll = spec.HierarchicalAllToAll,
            // Silos of unequal nodes: no node size, so the exchange stays flat.
            NodeSize = perNode.Length == 1 ? perNode[0] : 0,
        };
        // Checked before joining: a layout the model cannot take fails every rank alike, not in a collective.
        layout.Validate(saved.Config.Model, saved.Config.Moe);
        string key = $"serve/{spec.Name}/{role.Members[0].Silo}/f{role.Formation}";
        // MPI is refused upstream (a replica is not a whole mpiexec world); the data planes' collective timeouts stand,
        // and an idle rank 0 pings its followers well within them.
        var world = DataPlaneWorld.Join(role.DataPlane, key, role.Members.Count, role.Rank, role.DataPlaneId, CudaDriver.OrdinalOf(device));
        ServingGroups? groups = null;
        try
        {
            groups = ServingGroups.Create(world, layout);
            var model = SlicedModel.FromCheckpoint(saved, groups, device);
            return new ServingReplicaParts(model, saved.Tokenizer, device)
            {
                world = world,
                groups = groups,
                sharedMemoryKey = role.DataPlane == "shared-memory" ? key : null,
                Rank = new ReplicaRank(model, groups, world, device, spec.MaxBatch),
            };
        }
        catch
        {
            groups?.Dispose();
            world.Dispose();
            throw;
        }
    }

    /// <summary>Makes every rank's current and next collective fail (a rank is gone, or the replica is unloaded).</summary>
    public void Abort(Exception cause)
    {
        if (sharedMemoryKey is not null) SharedMemoryRendezvous.Abort(sharedMemoryKey, cause);
        if (world is NcclCommunicator nccl) nccl.Abort(cause);
    }

    public void Dispose()
    {
        Rank?.Dispose();
        Model.Dispose();
        groups?.Dispose();
        world?.Dispose();
    }
}
