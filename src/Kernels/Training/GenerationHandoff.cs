using System.Diagnostics;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Carries a training run from the ranks of one plan generation to those of the next over the next generation's
/// world, instead of through a checkpoint on a filesystem every silo must share. Every rank of the previous
/// generation is a rank of the next one and still holds its run (its model and optimiser, parked on its device);
/// ranks that joined hold nothing. Collective over the next world, in two calls made by every rank together:
/// <see cref="ReceiveProgress"/> (step, data position, optimiser step, from the previous rank 0) before the model is
/// built, <see cref="ReceiveState"/> after. Dense weights and their moments are broadcast from the previous rank 0 to
/// the joining ranks (the other previous ranks copy their own); each expert's weights and moments go point to point from a previous holder to each next holder that lacks it
/// (a holder that keeps an expert copies it on its own device).
/// </summary>
public sealed class GenerationHandoff : IRunHandoff
{
    readonly TrainingRun? previous;
    readonly ParallelLayout previousLayout;
    readonly int[] previousRankOf;
    readonly int source;

    /// <param name="previous">This rank's run of the previous generation; null for a rank that joined.</param>
    /// <param name="previousLayout">The previous generation's layout (which of its ranks held which experts).</param>
    /// <param name="previousRankOf">For each rank of the next generation, its rank in the previous one, or −1 when it joined.</param>
    public GenerationHandoff(TrainingRun? previous, ParallelLayout previousLayout, IReadOnlyList<int> previousRankOf)
    {
        this.previous = previous;
        this.previousLayout = previousLayout;
        this.previousRankOf = [.. previousRankOf];
        var missing = Enumerable.Range(0, previousLayout.WorldSize).Except(this.previousRankOf).ToArray();
        if (missing.Length > 0)
            throw new ArgumentException($"previous rank(s) {string.Join(", ", missing)} are not ranks of the next generation: their experts would be lost; hand off through a checkpoint instead", nameof(previousRankOf));
        if (this.previousRankOf.Where(r => r >= 0).GroupBy(r => r).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"previous rank {twice.Key} is given to several next ranks", nameof(previousRankOf));
        source = Array.IndexOf(this.previousRankOf, 0);
    }

    public long BytesReceived { get; private set; }

    public double Seconds { get; private set; }

    /// <summary>The step, data position and optimiser step of the previous generation (collective).</summary>
    public HandoffProgress ReceiveProgress(RankGroups? next, Device device)
    {
        RequireWorld(next);
        long[] values = previous is { } run && next.Rank == source
            ? [run.Trainer.Step, run.Trainer.Sampler.Position.Epoch, run.Trainer.Sampler.Position.Index, run.Trainer.Optimizer.StepCount]
            : new long[4];
        using var buffer = torch.tensor(values, device: device);
        next.World.Broadcast(buffer, source);
        var carried = buffer.cpu().data<long>().ToArray();
        return new HandoffProgress(carried[0], new SamplerPosition(carried[1], carried[2]), carried[3]);
    }

    /// <summary>Fills <paramref name="model"/> and <paramref name="optimizer"/> (this rank's shard of the next layout) with the previous generation's state (collective).</summary>
    public void ReceiveState(GptModel model, AdamWOptimizer optimizer, RankGroups? next)
    {
        RequireWorld(next);
        var clock = Stopwatch.StartNew();
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        int rank = next.Rank;
        bool isSource = rank == source;
        var before = previous?.Model;
        var beforeOptimizer = previous?.Trainer.Optimizer;

        // Dense state goes to the joining ranks only (the previous ranks hold it already, equal on all of them):
        // a broadcast in a group of the source and the joiners, the source first.
        bool joined = previousRankOf[rank] < 0;
        using (var dense = next.World.Split(isSource || joined ? 0 : 1, isSource ? -1 : rank))
        {
            var beforeDense = before is null ? null : ExpertStacks.Dense(before).ToDictionary(p => p.Name, p => p.Parameter);
            foreach (var (name, p) in ExpertStacks.Dense(model))
            {
                var (m, v) = optimizer.Moments[name];
                Tensor[] into = [p, m, v];
                Tensor[] from = before is null ? into : [beforeDense![name], beforeOptimizer!.Moments[name].M, beforeOptimizer.Moments[name].V];
                for (int i = 0; i < into.Length; i++)
                {
                    // The source sends its previous tensor; joiners receive in place; every previous rank copies its own.
                    if (isSource || joined) dense.Broadcast(from[i], 0);
                    if (before is not null) into[i].copy_(from[i]);
                    else BytesReceived += into[i].NumberOfElements * into[i].ElementSize;
                }
            }
        }

        var beforeLayers = before?.MoeLayers.ToDictionary(l => l.LayerIndex);
        foreach (var layer in model.MoeLayers)
        {
            int experts = layer.Router.Settings.Experts;
            var held = beforeLayers is null ? null : ExpertStacks.Of(before!, beforeOptimizer!, beforeLayers[layer.LayerIndex].Experts).Select(s => s.Tensor).ToArray();
            var mine = ExpertStacks.Of(model, optimizer, layer.Experts).Select(s => s.Tensor).ToArray();
            BytesReceived += ExpertMoves.Move(next.World, experts,
                r => previousRankOf[r] >= 0 ? previousLayout.ShardOf(previousRankOf[r], experts) : null,
                r => next.Layout.ShardOf(r, experts), held, mine);
        }
        if (model.parameters().First().device.type == DeviceType.CUDA) torch.cuda.synchronize();
        Seconds = clock.Elapsed.TotalSeconds;
    }

    void RequireWorld([System.Diagnostics.CodeAnalysis.NotNull] RankGroups? next)
    {
        if (next is null) throw new ArgumentNullException(nameof(next), "a handoff of a growing job runs over the next generation's ranks");
        if (next.Size != previousRankOf.Length)
            throw new ArgumentException($"the next world has {next.Size} ranks, the handoff map {previousRankOf.Length}");
        bool wasMember = previousRankOf[next.Rank] >= 0;
        if (wasMember && previous is null)
            throw new InvalidOperationException($"rank {next.Rank} was rank {previousRankOf[next.Rank]} of the previous generation but holds no run of it to hand off");
        if (!wasMember && previous is not null)
            throw new InvalidOperationException($"rank {next.Rank} joined the job yet holds a previous run");
    }
}

/// <summary>Where the previous generation stopped: the next one trains from here.</summary>
public readonly record struct HandoffProgress(long Step, SamplerPosition DataPosition, long OptimizerStep);
