using System.Diagnostics;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// The state a rank of a shrinking job keeps for the next generation, staged over the previous generation's world
/// before it ends: every next rank was a previous one, so the ranks that leave (a drained silo) send their experts
/// to the ranks that will hold them while they are still there. The dense weights and moments are the rank's own
/// (equal on every previous rank); the experts of its next shard are copied or received into new stacks. Building the
/// next run then moves nothing (<see cref="IRunHandoff"/> with no communication).
/// </summary>
public sealed class StagedHandoff : IRunHandoff, IDisposable
{
    readonly TrainingRun run;
    readonly int nextRank;
    readonly Dictionary<int, Tensor[]> experts;

    StagedHandoff(TrainingRun run, int nextRank, Dictionary<int, Tensor[]> experts, long bytes, double seconds)
    {
        this.run = run;
        this.nextRank = nextRank;
        this.experts = experts;
        BytesReceived = bytes;
        Seconds = seconds;
    }

    public long BytesReceived { get; }

    public double Seconds { get; }

    /// <summary>
    /// Collective over the previous generation's ranks: every one calls it with the same next layout and map. Returns
    /// what this rank keeps for the next generation, or null when it leaves (after it sent what others need).
    /// </summary>
    /// <param name="run">This rank's run (it stays alive: the staged state refers to its dense weights).</param>
    /// <param name="previous">The previous generation's groups (still open).</param>
    /// <param name="nextLayout">The next generation's layout.</param>
    /// <param name="nextRankOf">For each previous rank, its rank in the next generation, or −1 when it leaves.</param>
    public static StagedHandoff? Stage(TrainingRun run, RankGroups previous, ParallelLayout nextLayout, IReadOnlyList<int> nextRankOf)
    {
        if (nextRankOf.Count != previous.Size)
            throw new ArgumentException($"the map has {nextRankOf.Count} previous ranks, the world {previous.Size}", nameof(nextRankOf));
        var missing = Enumerable.Range(0, nextLayout.WorldSize).Except(nextRankOf).ToArray();
        if (missing.Length > 0)
            throw new ArgumentException($"next rank(s) {string.Join(", ", missing)} are not previous ranks: staging serves a job that shrinks; a job that grows hands off over the next world", nameof(nextRankOf));
        var clock = Stopwatch.StartNew();
        int next = nextRankOf[previous.Rank];
        var staged = new Dictionary<int, Tensor[]>();
        long bytes = 0;
        using (torch.no_grad())
        using (torch.NewDisposeScope())
        {
            foreach (var layer in run.Model.MoeLayers)
            {
                int count = layer.Router.Settings.Experts;
                var held = ExpertStacks.Of(run.Model, run.Trainer.Optimizer, layer.Experts).Select(s => s.Tensor).ToArray();
                Tensor[]? into = null;
                if (next >= 0)
                {
                    int mine = nextLayout.ShardOf(next, count).Count;
                    into = held.Select(t => torch.empty([mine, .. t.shape[1..]], t.dtype, t.device).DetachFromDisposeScope()).ToArray();
                    staged[layer.LayerIndex] = into;
                }
                bytes += ExpertMoves.Move(previous.World, count, r => previous.Layout.ShardOf(r, count),
                    r => nextRankOf[r] >= 0 ? nextLayout.ShardOf(nextRankOf[r], count) : null, held, into);
            }
        }
        if (run.Device.type == DeviceType.CUDA) torch.cuda.synchronize();
        return next < 0 ? null : new StagedHandoff(run, next, staged, bytes, clock.Elapsed.TotalSeconds);
    }

    public HandoffProgress ReceiveProgress(RankGroups? next, Device device)
    {
        int rank = next?.Rank ?? 0;
        if (rank != nextRank)
            throw new InvalidOperationException($"the state was staged for next rank {nextRank}, not rank {rank}");
        var trainer = run.Trainer;
        return new HandoffProgress(trainer.Step, trainer.Sampler.Position, trainer.Optimizer.StepCount);
    }

    public void ReceiveState(GptModel model, AdamWOptimizer optimizer, RankGroups? next)
    {
        using var noGrad = torch.no_grad();
        var before = run.Model;
        var beforeOptimizer = run.Trainer.Optimizer;
        var beforeDense = ExpertStacks.Dense(before).ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, p) in ExpertStacks.Dense(model))
        {
            p.copy_(beforeDense[name]);
            optimizer.Moments[name].M.copy_(beforeOptimizer.Moments[name].M);
            optimizer.Moments[name].V.copy_(beforeOptimizer.Moments[name].V);
        }
        foreach (var layer in model.MoeLayers)
        {
            var mine = ExpertStacks.Of(model, optimizer, layer.Experts);
            var staged = experts[layer.LayerIndex];
            for (int i = 0; i < mine.Length; i++)
            {
                if (!mine[i].Tensor.shape.SequenceEqual(staged[i].shape))
                    throw new InvalidOperationException($"layer {layer.LayerIndex} {mine[i].Name}: staged [{string.Join(", ", staged[i].shape)}], the next rank holds [{string.Join(", ", mine[i].Tensor.shape)}]");
                mine[i].Tensor.copy_(staged[i]);
            }
        }
    }

    public void Dispose()
    {
        foreach (var stacks in experts.Values)
            foreach (var t in stacks) t.Dispose();
    }
}
