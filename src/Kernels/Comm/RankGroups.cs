namespace Orleans.MoE.Kernels.Comm;

/// <summary>
/// One rank's view of a job's groups: the world (data parallelism of the dense weights) and, for every
/// expert-parallel size the model's layers use, the expert-parallel exchange and the expert-data-parallel group.
/// Creating it is collective: every rank of the world builds it with the same layout and expert counts.
/// </summary>
public sealed class RankGroups : IDisposable
{
    readonly Dictionary<int, ITokenExchange?> exchanges = [];
    readonly Dictionary<int, ICommunicator?> expertData = [];
    readonly List<ICommunicator> owned = [];

    RankGroups(ICommunicator world, ParallelLayout layout, CommunicationClock? clock)
    {
        World = world;
        Layout = layout;
        Clock = clock;
    }

    public ICommunicator World { get; }
    public ParallelLayout Layout { get; }
    public int Rank => World.Rank;
    public int Size => World.Size;

    /// <summary>Time in collectives when they are being measured (parallel.profile_communication), else null.</summary>
    public CommunicationClock? Clock { get; }

    /// <param name="clock">When given, every collective is timed into it (see <see cref="TimedCommunicator"/>).</param>
    public static RankGroups Create(ICommunicator world, ParallelLayout layout, IEnumerable<int> expertCounts, CommunicationClock? clock = null)
    {
        if (layout.WorldSize != world.Size)
            throw new ArgumentException($"the layout is for {layout.WorldSize} ranks, the communicator has {world.Size}");
        if (clock is not null) world = new TimedCommunicator(world, clock);
        var groups = new RankGroups(world, layout, clock);
        int rank = world.Rank;
        // Splits are collective, so every rank walks the same sizes in the same order.
        foreach (int size in expertCounts.Select(layout.ExpertParallelSize).Distinct().Order())
        {
            if (size == 1)
            {
                groups.exchanges[size] = null;
                groups.expertData[size] = world.Size > 1 ? world : null;
                continue;
            }
            var parallel = groups.Own(world.Split(rank / size, rank));
            var data = groups.Own(world.Split(rank % size, rank));
            groups.expertData[size] = data.Size > 1 ? data : null;
            groups.exchanges[size] = layout.UsesHierarchy(size)
                ? new HierarchicalTokenExchange(
                    groups.Own(parallel.Split(parallel.Rank / layout.NodeSize, parallel.Rank)),
                    groups.Own(parallel.Split(parallel.Rank % layout.NodeSize, parallel.Rank)),
                    parallel)
                : new FlatTokenExchange(parallel);
        }
        return groups;
    }

    /// <summary>The groups of a job's model: the layout from its parallel section, the expert counts from its MoE layers.</summary>
    public static RankGroups ForJob(ICommunicator world, Config.JobConfig config, int reportedNodeSize = 0) =>
        ForJob(world, config, ParallelLayout.For(config.Parallel, world.Size, reportedNodeSize));

    /// <summary>The groups of a job's model laid out as a plan says (the control plane decided the layout).</summary>
    public static RankGroups ForJob(ICommunicator world, Config.JobConfig config, ParallelLayout layout) =>
        Create(world, layout, config.Moe.Experts.ForLayers(config.Moe.Layers.Resolve(config.Model.Layers).Count),
            config.Parallel.ProfileCommunication ? new CommunicationClock() : null);

    public ExpertShard ShardOf(int experts) => Layout.ShardOf(Rank, experts);

    /// <summary>The all-to-all of the expert-parallel group of a layer with this many experts (null: all are local).</summary>
    public ITokenExchange? ExchangeFor(int experts) => exchanges[Layout.ExpertParallelSize(experts)];

    /// <summary>The ranks holding the same experts as this one (null: no other rank does).</summary>
    public ICommunicator? ExpertDataGroupFor(int experts) => expertData[Layout.ExpertParallelSize(experts)];

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
