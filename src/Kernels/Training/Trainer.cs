using System.Diagnostics;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Distillation;
using Orleans.MoE.Kernels.Layers;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Routing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// Drives optimiser steps on one process: the global batch is drawn once, split into micro-batches whose
/// gradients accumulate, then clipped on the global norm and applied by AdamWOptimizer on the warm-up + cosine schedule.
/// Routing group i of a step uses random stream (seed, step, i), so the split into micro-batches does not
/// change which numbers a group draws. On several ranks every rank draws the same global batch and trains on its
/// slice of it (rank r: rows r·B/W …), routing groups keep their global numbers, each rank's loss is scaled by
/// 1/W and the gradients are summed over their groups before clipping: the step is the one-process step.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly JobConfig config;
    readonly LearningRateSchedule schedule;
    readonly int microBatch;
    readonly Parameter[] parameters;
    readonly RankGroups? ranks;
    readonly GradientSynchronizer? synchronizer;
    readonly int rankRows;

    /// <param name="teacher">For a distillation job: the frozen teacher, run until the KD stop step.</param>
    /// <param name="ranks">This rank's groups when the job runs on several ranks (null: one process).</param>
    public Trainer(JobConfig config, GptModel model, TokenStream train, Device device, Teacher? teacher = null, RankGroups? ranks = null)
    {
        this.config = config;
        Teacher = teacher;
        Model = model;
        Device = device;
        this.ranks = ranks;
        var t = config.Training;
        int world = ranks?.Size ?? 1;
        (rankRows, microBatch) = RankBatch.For(t, world);
        if (ranks is not null) synchronizer = new GradientSynchronizer(model, ranks);
        schedule = new LearningRateSchedule(t.LearningRate, t.MinLearningRate, t.WarmupSteps, t.Steps);
        var named = model.named_parameters().ToArray();
        parameters = named.Select(p => p.parameter).ToArray();
        Optimizer = new AdamWOptimizer(named.Select(p => (p.name, p.parameter)), t.Beta1, t.Beta2, t.Epsilon, t.WeightDecay);
        this.train = train;
        Sampler = new BatchSampler(train.Tokens, model.Config.ContextLength, t.BatchSize, config.Seed);
    }

    readonly TokenStream train;

    public GptModel Model { get; }

    /// <summary>The distillation teacher, or null (no distillation, or released after the KD stop step).</summary>
    public Teacher? Teacher { get; private set; }

    /// <summary>Whether the step about to run still adds the KD term (and runs the teacher).</summary>
    public bool KnowledgeDistillationActive =>
        Teacher is not null && config.Distillation is { } kd && (kd.KdStopStep == 0 || Step < kd.KdStopStep);
    public Device Device { get; }
    public AdamWOptimizer Optimizer { get; }
    public BatchSampler Sampler { get; private set; }

    /// <summary>Continues from a checkpoint: the next step is <paramref name="step"/> and the data resumes at <paramref name="position"/>.</summary>
    public void ResumeAt(long step, SamplerPosition position)
    {
        Step = step;
        Sampler = new BatchSampler(train.Tokens, Model.Config.ContextLength, config.Training.BatchSize, config.Seed, position);
    }

    /// <summary>Optimiser steps completed.</summary>
    public long Step { get; private set; }

    public StepMetrics TrainStep()
    {
        var clock = Stopwatch.StartNew();
        var moe = config.Moe;
        int length = Model.Config.ContextLength;
        int groupsPerMicro = moe.RoutingGroupTokens > 0 ? microBatch * length / moe.RoutingGroupTokens : 1;
        Model.train();
        Optimizer.ZeroGrad();
        using var scope = torch.NewDisposeScope();
        using var batch = Sampler.Next(Device);
        int world = ranks?.Size ?? 1, rank = ranks?.Rank ?? 0;
        var rankInput = batch.Input.narrow(0, (long)rank * rankRows, rankRows);
        var rankTarget = batch.Target.narrow(0, (long)rank * rankRows, rankRows);
        int micros = rankRows / microBatch;
        // Routing groups are numbered over the global batch, so a group draws the same noise on any rank.
        long firstGroup = moe.RoutingGroupTokens > 0 ? (long)rank * rankRows * length / moe.RoutingGroupTokens : (long)rank * micros;
        var ce = torch.zeros(1, device: Device);
        var aux = torch.zeros(1, device: Device);
        var z = torch.zeros(1, device: Device);
        var distilled = torch.zeros(1, device: Device);
        bool distil = KnowledgeDistillationActive;
        var counts = new List<(int Layer, Tensor Load, Tensor Kept, int Capacity)>();
        for (int i = 0; i < micros; i++)
        {
            // Each micro-batch gets its own scope: its activations are freed as soon as its backward is done,
            // not when the whole step ends (with 4 micro-batches that is 4× less activation memory).
            using var microScope = torch.NewDisposeScope();
            var input = rankInput.narrow(0, i * microBatch, microBatch);
            var target = rankTarget.narrow(0, i * microBatch, microBatch);
            var statistics = new MoEStatistics();
            var logits = Model.Forward(input, new RoutingContext(config.Seed, Step, firstGroup + (long)i * groupsPerMicro), statistics, null);
            var loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), target.reshape(-1));
            var auxLoss = statistics.TotalAuxLoss(Device);
            // The z-loss costs three launches per layer; compute it only when it counts.
            var zLoss = moe.ZLossCoef > 0 ? statistics.TotalZLoss(Device) : torch.zeros(1, device: Device).squeeze();
            var total = loss + moe.AuxLossCoef * auxLoss + moe.ZLossCoef * zLoss;
            if (distil)
            {
                var kd = KnowledgeDistillationLoss.Compute(logits, Teacher!.Forward(input), config.Distillation!.Temperature);
                total = total + config.Distillation.Alpha * kd;
                distilled.add_(kd.detach() / micros);
            }
            (total / ((double)micros * world)).backward();
            TokenExchangeFunction.ThrowIfBackwardFailed();
            ce.add_(loss.detach() / micros);
            aux.add_(auxLoss.detach() / micros);
            z.add_(zLoss.detach() / micros);
            foreach (var r in statistics.Reports)
                counts.Add((r.Layer, r.Table.Load.MoveToOuterDisposeScope(), r.Table.Kept.MoveToOuterDisposeScope(), r.Table.Capacity));
        }
        Tensor norm;
        if (synchronizer is not null)
        {
            synchronizer.AllReduce();
            norm = synchronizer.ClipGlobalNorm(config.Training.GradClip);
            AverageOverRanks(ce, aux, z, distilled);
            counts = SumOverRanks(counts);
        }
        else
        {
            norm = GradientClipping.ClipGlobalNorm(parameters, config.Training.GradClip);
        }
        double lr = schedule.At(Step);
        Optimizer.Step(lr);
        Step++;
        // Past the KD stop step the teacher is never run again: free its weights.
        if (Teacher is not null && !KnowledgeDistillationActive)
        {
            Teacher.Release();
            Teacher = null;
        }

        var loads = counts.GroupBy(r => r.Layer).OrderBy(g => g.Key).Select(g => new ExpertLoad(
            g.Key,
            Sum(g.Select(r => r.Load)),
            Sum(g.Select(r => r.Kept)),
            g.Max(r => r.Capacity))).ToArray();
        double meanLoss = ce.item<float>();
        if (!double.IsFinite(meanLoss)) throw new InvalidOperationException($"training loss is {meanLoss} at step {Step}; lower training.learning_rate");
        return new StepMetrics
        {
            Step = Step,
            Loss = meanLoss,
            AuxLoss = aux.item<float>(),
            ZLoss = z.item<float>(),
            KdLoss = distil ? distilled.item<float>() : null,
            LearningRate = lr,
            GradNorm = norm.item<float>(),
            Tokens = batch.TargetCount,
            Seconds = clock.Elapsed.TotalSeconds,
            CommunicationSeconds = ranks?.Clock?.Take().TotalSeconds,
            ExpertLoads = loads,
        };
    }

    /// <summary>Turns each rank's mean of its slice into the global batch's mean (all slices are the same size).</summary>
    void AverageOverRanks(params Tensor[] means)
    {
        using var noGrad = torch.no_grad();
        var packed = torch.cat(means.Select(m => m.reshape(1)).ToArray());
        ranks!.World.AllReduce(packed);
        packed.div_(ranks.Size);
        for (int i = 0; i < means.Length; i++) means[i].copy_(packed.narrow(0, i, 1).reshape(means[i].shape));
    }

    /// <summary>Expert loads over the global batch: every rank's counts of every layer, summed in one all-reduce.</summary>
    List<(int Layer, Tensor Load, Tensor Kept, int Capacity)> SumOverRanks(List<(int Layer, Tensor Load, Tensor Kept, int Capacity)> counts)
    {
        if (counts.Count == 0) return counts;
        var packed = torch.cat(counts.SelectMany(c => new[] { c.Load, c.Kept }).ToArray());
        ranks!.World.AllReduce(packed);
        var summed = new List<(int Layer, Tensor Load, Tensor Kept, int Capacity)>(counts.Count);
        long at = 0;
        foreach (var c in counts)
        {
            long e = c.Load.numel();
            summed.Add((c.Layer, packed.narrow(0, at, e), packed.narrow(0, at + e, e), c.Capacity));
            at += 2 * e;
        }
        return summed;
    }

    static long[] Sum(IEnumerable<Tensor> counts) =>
        torch.stack(counts.ToArray()).sum(dim: 0).cpu().data<long>().ToArray();

    public void Dispose()
    {
        Optimizer.Dispose();
        Teacher?.Dispose();
    }
}
