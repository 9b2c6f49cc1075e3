using System.Diagnostics;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Distillation;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Training;

/// <summary>
/// One training job in one process, start to finish: data, model, optimiser, periodic evaluation and
/// checkpoints, resume. The console runs it directly; silos run the same object on their device executor.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    readonly TrainingRunOptions options;

    TrainingRun(JobConfig config, TrainingRunOptions options, TrainingData data, GptModel model, Trainer trainer, Device device, RankGroups? ranks)
    {
        Ranks = ranks;
        Config = config;
        this.options = options;
        Data = data;
        Model = model;
        Trainer = trainer;
        Device = device;
    }

    public JobConfig Config { get; }
    public TrainingData Data { get; }
    public GptModel Model { get; }
    public Trainer Trainer { get; }
    public Device Device { get; }

    /// <summary>This rank's groups when the run is one of several ranks (null: one process).</summary>
    public RankGroups? Ranks { get; }

    /// <summary>Parameters of the whole model (on several ranks: this rank's shard of the experts counts as all of them).</summary>
    public ParameterCount Parameters => ParameterCount.Of(Model);

    /// <summary>Validates, loads data, builds the model with the job's seed and restores a checkpoint if asked.</summary>
    /// <param name="ranks">For one rank of a multi-rank job: its groups; the model then holds this rank's experts.
    /// Every rank calls this (and every later collective step) together.</param>
    public static TrainingRun Create(JobConfig config, TrainingRunOptions options, RankGroups? ranks = null)
    {
        ConfigValidator.Validate(config);
        var device = TorchRuntime.ResolveDevice(options.Device ?? config.Device);
        ModelCheckpoint? checkpoint = options.ResumeFrom is { } from ? ModelCheckpoint.Open(from) : null;
        if (checkpoint is not null) checkpoint.RequireCompatible(config);
        if (options.Handoff is not null && checkpoint is not null)
            throw new ArgumentException("a handoff from the previous generation replaces a checkpoint: give one or the other", nameof(options));
        var data = TrainingData.Load(config, options.CacheDirectory);
        HandoffProgress? carried = options.Handoff?.ReceiveProgress(ranks, device);
        long resumeStep = checkpoint?.Step ?? carried?.Step ?? 0;
        // Weights are drawn on the CPU from the job's own generator, then moved: the same seed gives the same model
        // on any device, and jobs built at the same time in one process (silos, tests) cannot disturb each other.
        using var init = new Generator((ulong)config.Seed);
        var model = new GptModel(config.Model, config.Moe, data.Tokenizer.VocabSize, init, ranks is null ? null : ranks.ShardOf);
        if (ranks is not null) model.UseExpertParallelism(ranks);
        model.to(device);
        model.ComputeType = ComputePrecision.For(config.Training.Precision, device);
        var teacher = LoadTeacher(config, data, device, resumeStep);
        if (teacher is not null && checkpoint is null && carried is null && config.Distillation!.StudentLayers.Count > 0)
            StudentInitialiser.CopyFromTeacher(model, teacher.Model!, config.Distillation.StudentLayers);
        var trainer = new Trainer(config, model, data.Train, device, teacher, ranks);
        if (checkpoint is not null)
        {
            checkpoint.Restore(model, trainer.Optimizer);
            trainer.ResumeAt(checkpoint.Step, checkpoint.DataPosition);
        }
        else if (carried is { } progress)
        {
            options.Handoff!.ReceiveState(model, trainer.Optimizer, ranks);
            trainer.Optimizer.StepCount = progress.OptimizerStep;
            trainer.ResumeAt(progress.Step, progress.DataPosition);
        }
        return new TrainingRun(config, options, data, model, trainer, device, ranks);
    }

    /// <summary>The teacher of a distillation job, unless the run resumes past the KD stop step (then it is never needed).</summary>
    static Teacher? LoadTeacher(JobConfig config, TrainingData data, Device device, long resumeStep)
    {
        if (config.Distillation is not { } kd || (kd.KdStopStep > 0 && resumeStep >= kd.KdStopStep)) return null;
        var saved = ModelCheckpoint.Open(kd.TeacherCheckpoint);
        if (saved.Tokenizer.Name != data.Tokenizer.Name)
            throw new ConfigException("distillation.teacher_checkpoint", $"the teacher uses the {saved.Tokenizer.Name} tokenizer, the student {data.Tokenizer.Name}");
        return new Teacher(saved, device);
    }

    // What the steps run so far in this object have produced; Run and RunSteps share it so that a run driven in
    // chunks (the silo's replica) ends with the same summary as one driven to the end in one call.
    readonly List<double> losses = [];
    readonly List<double> rates = [];
    Stopwatch? clock;
    long firstStep;
    double trainLoss = double.NaN;

    /// <summary>The step this run stops at: training.steps, or <see cref="TrainingRunOptions.StopAfter"/> when smaller.</summary>
    public long LastStep => Math.Min(Config.Training.Steps, options.StopAfter ?? Config.Training.Steps);

    /// <summary>Trains until the last step (or <see cref="TrainingRunOptions.StopAfter"/>), evaluates and writes a final checkpoint.</summary>
    public TrainingSummary Run(IProgress<TrainingProgress>? progress, CancellationToken cancellation)
    {
        while (Trainer.Step < LastStep && !cancellation.IsCancellationRequested)
        {
            // Not `progress?.Report(StepOnSchedule())`: that would skip the step itself when nobody listens.
            var step = StepOnSchedule();
            progress?.Report(step);
        }
        return Finish(progress);
    }

    /// <summary>
    /// Runs at most <paramref name="count"/> steps (fewer at the last step or on cancellation), with the periodic
    /// evaluations and checkpoints <see cref="Run"/> makes; what each step reported, in order. A controller that
    /// drives a run in chunks calls this, then <see cref="Finish"/>.
    /// </summary>
    public IReadOnlyList<TrainingProgress> RunSteps(int count, CancellationToken cancellation)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var reports = new List<TrainingProgress>(Math.Min(count, 1024));
        for (int i = 0; i < count && Trainer.Step < LastStep && !cancellation.IsCancellationRequested; i++)
            reports.Add(StepOnSchedule());
        return reports;
    }

    /// <summary>One optimiser step plus the evaluation and checkpoint the schedule asks for at it.</summary>
    TrainingProgress StepOnSchedule()
    {
        var t = Config.Training;
        long last = LastStep;
        if (clock is null)
        {
            clock = Stopwatch.StartNew();
            firstStep = Trainer.Step;
        }
        var metrics = Trainer.TrainStep();
        losses.Add(metrics.Loss);
        rates.Add(metrics.TokensPerSecond);
        trainLoss = metrics.Loss;
        double perStep = clock.Elapsed.TotalSeconds / (Trainer.Step - firstStep);
        EvaluationResult? validation = null;
        if (t.EvalInterval > 0 && Trainer.Step % t.EvalInterval == 0 && Trainer.Step < last)
            validation = Evaluate(Data.Validation, t.EvalTokens);
        string? written = null;
        if (t.CheckpointInterval > 0 && Trainer.Step % t.CheckpointInterval == 0 && Trainer.Step < last)
            written = SaveCheckpoint();
        return new TrainingProgress(metrics, last, TimeSpan.FromSeconds(perStep * (last - Trainer.Step)), validation, written);
    }

    /// <summary>Evaluates on the validation split, writes the final checkpoint and summarises the steps this object ran.</summary>
    public TrainingSummary Finish(IProgress<TrainingProgress>? progress = null)
    {
        var t = Config.Training;
        clock ??= Stopwatch.StartNew();
        var final = Evaluate(Data.Validation, t.EvalTokens);
        string checkpoint = SaveCheckpoint();
        progress?.Report(new TrainingProgress(null, LastStep, TimeSpan.Zero, final, checkpoint));
        var count = Parameters;
        return new TrainingSummary
        {
            Name = Config.Name,
            Steps = Trainer.Step,
            TrainLoss = trainLoss,
            ValLoss = final.Loss,
            ValBitsPerByte = final.BitsPerByte,
            ValPerplexity = final.Perplexity,
            UnigramValLoss = UnigramBaseline.Loss(Data.Train, Data.Validation, Data.Tokenizer.VocabSize),
            ParamsTotal = count.Total,
            ParamsActivePerToken = count.ActivePerToken,
            TokensPerSecond = Median(rates),
            Seconds = clock.Elapsed.TotalSeconds,
            Device = Device.ToString(),
            Checkpoint = checkpoint,
            Losses = losses.ToList(),
        };
    }

    public EvaluationResult Evaluate(TokenStream stream, long maxTokens = 0) =>
        Evaluator.Evaluate(Model, stream, Device, Math.Max(1, Config.Training.MicroBatchSize > 0 ? Config.Training.MicroBatchSize : Config.Training.BatchSize), maxTokens);

    public string SaveCheckpoint() =>
        ModelCheckpoint.Save(Path.Combine(options.OutputDirectory, "checkpoints"), Config, Data.Tokenizer.Name, Model, Trainer.Optimizer, Trainer.Step, Trainer.Sampler.Position, Ranks);

    static double Median(List<double> values)
    {
        if (values.Count == 0) return 0;
        // The first steps include warm-up (allocations, first-touch); skip them when there are enough.
        var sorted = values.Skip(values.Count > 10 ? 3 : 0).Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    public void Dispose()
    {
        Trainer.Dispose();
        Model.Dispose();
    }
}
