using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Model;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Where a run of the next plan generation takes its state from instead of a checkpoint: the previous generation's
/// ranks (<see cref="GenerationHandoff"/>, when the job grows) or what they staged for it (<see cref="StagedHandoff"/>,
/// when it shrinks). <see cref="TrainingRun.Create"/> calls both methods, in order, on every rank together.
/// </summary>
public interface IRunHandoff
{
    /// <summary>The step, data position and optimiser step the next generation trains from.</summary>
    HandoffProgress ReceiveProgress(RankGroups? next, Device device);

    /// <summary>Fills this rank's model and optimiser (its shard of the next layout).</summary>
    void ReceiveState(GptModel model, AdamWOptimizer optimizer, RankGroups? next);

    /// <summary>Bytes this rank received from other ranks for the next generation.</summary>
    long BytesReceived { get; }

    /// <summary>Seconds the state took to move (over the data plane, wherever that happened).</summary>
    double Seconds { get; }
}
