namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Whole nodes of <see cref="GpusPerNode"/> GPUs, <see cref="Gpus"/> in all, one rank per GPU.</summary>
public sealed record ClusterShape
{
    public ClusterShape(int gpus, int gpusPerNode)
    {
        if (gpusPerNode < 1) throw new ArgumentException($"GPUs per node must be ≥ 1, not {gpusPerNode}");
        if (gpus < gpusPerNode || gpus % gpusPerNode != 0)
            throw new ArgumentException($"{gpus} GPUs is not a whole number of {gpusPerNode}-GPU nodes");
        Gpus = gpus;
        GpusPerNode = gpusPerNode;
    }

    public int Gpus { get; }

    public int GpusPerNode { get; }

    public int Nodes => Gpus / GpusPerNode;
}
