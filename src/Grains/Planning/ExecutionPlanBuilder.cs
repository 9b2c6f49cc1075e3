using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Grains.Planning;

/// <summary>
/// Builds a job's execution plan from its members and config with the same arithmetic the data plane uses
/// (<see cref="ParallelLayout"/>): every member is a data-parallel replica of the dense weights; each expert count
/// gets expert-parallel groups of consecutive ranks; the node size is how many members share a node.
/// </summary>
public static class ExecutionPlanBuilder
{
    public static ExecutionPlan Build(long generation, IReadOnlyList<PlanMember> members, JobConfig config)
    {
        if (members.Count == 0) throw new ArgumentException("a plan needs at least one member", nameof(members));
        var ranked = members.Select((m, i) => m with { Rank = i }).ToArray();
        int world = ranked.Length;
        var layout = ParallelLayout.For(config.Parallel, world, ReportedNodeSize(ranked));
        var moeLayers = config.Moe.Layers.Resolve(config.Model.Layers);
        var counts = config.Moe.Experts.ForLayers(moeLayers.Count);
        var groups = counts.Distinct().Order().SelectMany(c =>
        {
            int size = layout.ExpertParallelSize(c);
            return Enumerable.Range(0, world / size).Select(g => new ExpertParallelGroup(c, Enumerable.Range(g * size, size).ToArray()));
        }).ToArray();
        var layers = moeLayers.Select((layer, i) =>
            new LayerExperts(layer, counts[i], Enumerable.Range(0, counts[i]).Select(e => layout.FirstHolder(counts[i], e)).ToArray())).ToArray();
        return new ExecutionPlan
        {
            Generation = generation,
            Members = ranked,
            DataParallelGroups = [Enumerable.Range(0, world).ToArray()],
            ExpertParallelGroups = groups,
            Layers = layers,
            DataPlane = DataPlaneFor(ranked),
            MaxExpertParallel = layout.MaxExpertParallel,
            NodeSize = layout.NodeSize,
            HierarchicalAllToAll = layout.Hierarchical,
        };
    }

    /// <summary>Members per node when every node has the same number, else 0 (the config must say).</summary>
    static int ReportedNodeSize(PlanMember[] members)
    {
        var perNode = members.GroupBy(m => m.Node).Select(g => g.Count()).Distinct().ToArray();
        return perNode.Length == 1 ? perNode[0] : 0;
    }

    /// <summary>
    /// GPU silos exchange through NCCL; CPU silos of one process share memory; CPU silos started by one mpiexec
    /// use MPI. CPU silos in separate processes without MPI have no data plane.
    /// </summary>
    public static string DataPlaneFor(PlanMember[] members)
    {
        if (members.Length == 1) return "none";
        if (members.All(m => m.MpiRank >= 0))
        {
            // An MPI world's ranks are fixed at launch: the plan must number the silos as mpiexec did.
            if (members.Any(m => m.MpiRank != m.Rank))
                throw new NotSupportedException($"the job's silos have MPI ranks {string.Join(", ", members.Select(m => m.MpiRank))} in plan order; an MPI job needs all ranks of the launch, in order");
            return "mpi";
        }
        // GPU silos talk NCCL even inside one process (tensors stay on the GPUs, over NVLink).
        if (members.All(m => m.Device.StartsWith("cuda", StringComparison.Ordinal))) return "nccl";
        if (members.All(m => m.Process == members[0].Process)) return "shared-memory";
        throw new NotSupportedException(
            $"the job's {members.Length} silos run in {members.Select(m => m.Process).Distinct().Count()} processes on CPU devices; " +
            "silo-driven jobs across processes need GPU silos (NCCL). Run CPU jobs across processes with mpiexec (docs/data-plane.md), or use silos of one process");
    }
}
