using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Layers;

namespace Orleans.MoE.Kernels.Serving;

/// <summary>
/// One rank's communicators in a serving replica: its tensor-slicing group (L consecutive ranks) and its
/// expert-parallel group (the G ranks with the same tensor-slicing rank) with that group's token exchange. Every MoE
/// layer uses the whole expert-parallel group whatever its expert count (E / G whole experts per rank, or expert
/// slicing when E &lt; G), so one exchange serves all of them. Creating it is collective over the replica.
/// </summary>
public sealed class ServingGroups : IDisposable
{
    readonly List<ICommunicator> owned = [];

    ServingGroups(ServingLayout layout, int rank)
    {
        Layout = layout;
        Rank = rank;
    }

    public ServingLayout Layout { get; }

    /// <summary>This rank in the replica.</summary>
    public int Rank { get; }

    public int TensorRank => Layout.TensorRank(Rank);

    public int ExpertRank => Layout.ExpertRank(Rank);

    /// <summary>The ranks that hold the same tokens and sum the slices of attention and dense MLPs.</summary>
    public ICommunicator TensorGroup { get; private set; } = null!;

    /// <summary>The ranks with this rank's tensor-slicing rank, which share out the experts.</summary>
    public ICommunicator ExpertGroup { get; private set; } = null!;

    /// <summary>This rank's slice of attention and dense MLPs (null without tensor slicing).</summary>
    public TensorSlice? Slice { get; private set; }

    /// <summary>The expert-parallel all-to-all (null when one rank holds every expert).</summary>
    public ITokenExchange? Exchange { get; private set; }

    public static ServingGroups Create(ICommunicator replica, ServingLayout layout)
    {
        if (layout.WorldSize != replica.Size)
            throw new ArgumentException($"tensor_slicing {layout.TensorSlicing} × expert_parallel {layout.ExpertParallel} = {layout.WorldSize} ranks, but the replica has {replica.Size}");
        int rank = replica.Rank;
        var groups = new ServingGroups(layout, rank);
        // Splits are collective: every rank makes the same ones in the same order.
        groups.TensorGroup = groups.Own(replica.Split(layout.ExpertRank(rank), rank));
        groups.ExpertGroup = groups.Own(replica.Split(layout.TensorRank(rank), rank));
        groups.Slice = layout.TensorSlicing > 1 ? new TensorSlice(groups.TensorGroup) : null;
        groups.Exchange = layout.ExpertParallel == 1 ? null : groups.ExchangeOver(groups.ExpertGroup);
        return groups;
    }

    /// <summary>The experts this rank holds of a layer with this many experts.</summary>
    public ExpertShard ShardOf(int experts) => Layout.ShardOf(ExpertRank, experts);

    ITokenExchange ExchangeOver(ICommunicator expert)
    {
        if (!Layout.UsesHierarchy) return new FlatTokenExchange(expert);
        int perNode = Layout.ExpertRanksPerNode, g = expert.Rank;
        return new HierarchicalTokenExchange(Own(expert.Split(g / perNode, g)), Own(expert.Split(g % perNode, g)), expert);
    }

    ICommunicator Own(ICommunicator communicator)
    {
        owned.Add(communicator);
        return communicator;
    }

    public void Dispose()
    {
        foreach (var c in owned) c.Dispose();
    }
}
