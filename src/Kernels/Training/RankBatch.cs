using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// A rank's share of the global batch on a world of ranks: its rows of every step and the micro-batch it runs them
/// in (the config's, or the rank's whole share when that is smaller).
/// </summary>
public readonly record struct RankBatch(int Rows, int MicroBatch)
{
    /// <exception cref="ConfigException">The batch does not split evenly over the ranks, or the share into micro-batches.</exception>
    public static RankBatch For(TrainingConfig training, int world)
    {
        if (training.BatchSize % world != 0)
            throw new ConfigException("training.batch_size", $"{training.BatchSize} sequences cannot be split evenly over {world} ranks");
        int rows = training.BatchSize / world;
        int micro = training.MicroBatchSize > 0 ? Math.Min(training.MicroBatchSize, rows) : rows;
        if (rows % micro != 0)
            throw new ConfigException("training.micro_batch_size", $"{micro} does not divide the {rows} sequences each of the {world} ranks trains on");
        return new RankBatch(rows, micro);
    }
}
