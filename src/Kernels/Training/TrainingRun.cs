using System.Diagnostics;
using Orleans.MoE.Kernels.Checkpoints;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
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

    TrainingRun(JobConfig config, TrainingRunOptions options, TrainingData data, GptModel model, Trainer trainer, Device device)
    {
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
    public ParameterCount Parameters => ParameterCount.Of(Model);

    /// <summary>Validates, loads data, builds the model with the job's seed and restores a checkpoint if asked.</summary>
    public static TrainingRun Create(JobConfig config, TrainingRunOptions options)
    {
        ConfigValidator.Validate(config);
        var device = TorchRuntime.ResolveDevice(options.Device ?? config.Device);
        ModelCheckpoint? checkpoint = options.ResumeFrom is { } from ? ModelCheckpoint.Open(from) : null;
        if (checkpoint is not null) checkpoint.RequireCompatible(config);
        var data = TrainingData.Load(config, options.CacheDirectory);
        // Weights are drawn on the CPU from the job's seed, then moved: the same seed gives the same model on any device.
        torch.manual_seed(config.Seed);
        var model = new GptModel(config.Model, config.Moe, data.Tokenizer.VocabSize);
        model.to(device);
        model.ComputeType = ComputePrecision.For(config.Training.Precision, device);
        var trainer = new Trainer(config, model, data.Train, device);
        if (checkpoint is not null)
        {
            checkpoint.Restore(model, trainer.Optimizer);
            trainer.ResumeAt(checkpoint.Step, checkpoint.DataPosition);
        }
        return new TrainingRun(config, options, data, model, trainer, device);
    }

    /// <summary>Trains until the last step (or <see cref="TrainingRunOptions.StopAfter"/>), evaluates and writes a final checkpoint.</summary>
    public TrainingSummary Run(IProgress<TrainingProgress>? progress, CancellationToken cancellation)
    {
        var t = Config.Training;
        long last = Math.Min(t.Steps, options.StopAfter ?? t.Steps);
        var clock = Stopwatch.StartNew();
        var losses = new List<double>();
        var rates = new List<double>();
        string? checkpoint = null;
        double trainLoss = double.NaN;
        long first = Trainer.Step;
        while (Trainer.Step < last && !cancellation.IsCancellationRequested)
        {
            var metrics = Trainer.TrainStep();
            losses.Add(metrics.Loss);
            rates.Add(metrics.TokensPerSecond);
            trainLoss = metrics.Loss;
            double perStep = clock.Elapsed.TotalSeconds / (Trainer.Step - first);
            EvaluationResult? validation = null;
            if (t.EvalInterval > 0 && Trainer.Step % t.EvalInterval == 0 && Trainer.Step < last)
                validation = Evaluate(Data.Validation, t.EvalTokens);
            string? written = null;
            if (t.CheckpointInterval > 0 && Trainer.Step % t.CheckpointInterval == 0 && Trainer.Step < last)
                written = checkpoint = SaveCheckpoint();
            progress?.Report(new TrainingProgress(metrics, last, TimeSpan.FromSeconds(perStep * (last - Trainer.Step)), validation, written));
        }
        var final = Evaluate(Data.Validation, t.EvalTokens);
        checkpoint = SaveCheckpoint();
        progress?.Report(new TrainingProgress(null, last, TimeSpan.Zero, final, checkpoint));
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
            Losses = losses,
        };
    }

    public EvaluationResult Evaluate(TokenStream stream, long maxTokens = 0) =>
        Evaluator.Evaluate(Model, stream, Device, Math.Max(1, Config.Training.MicroBatchSize > 0 ? Config.Training.MicroBatchSize : Config.Training.BatchSize), maxTokens);

    public string SaveCheckpoint() =>
        ModelCheckpoint.Save(Path.Combine(options.OutputDirectory, "checkpoints"), Config, Data.Tokenizer.Name, Model, Trainer.Optimizer, Trainer.Step, Trainer.Sampler.Position);

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
