namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Flat against hierarchical all-to-all at one cluster size and message size.</summary>
public sealed record AllToAllComparison(int Gpus, int Nodes, double BytesPerRank, AllToAllEstimate Flat, AllToAllEstimate Hierarchical)
{
    /// <summary>Flat time over hierarchical time: above 1, hierarchical is faster.</summary>
    public double Speedup => Flat.TotalSeconds / Hierarchical.TotalSeconds;

    public bool HierarchicalFaster => Hierarchical.TotalSeconds < Flat.TotalSeconds;

    /// <summary>One node, then doubling the nodes up to <paramref name="maxGpus"/>, for every size.</summary>
    public static IReadOnlyList<AllToAllComparison> Sweep(AllToAllCostModel model, int gpusPerNode, int maxGpus, IReadOnlyList<double> sizes)
    {
        var rows = new List<AllToAllComparison>();
        for (int gpus = gpusPerNode; gpus <= maxGpus; gpus *= 2)
        {
            var shape = new ClusterShape(gpus, gpusPerNode);
            rows.AddRange(sizes.Select(s => new AllToAllComparison(gpus, shape.Nodes, s, model.Flat(shape, s), model.Hierarchical(shape, s))));
        }
        return rows;
    }
}
