using System.Globalization;
using System.Text.Json;
using Orleans.MoE.Kernels.Comm;
using Orleans.MoE.Kernels.Config;
using Orleans.MoE.Kernels.Data;
using Orleans.MoE.Kernels.Model;
using Orleans.MoE.Kernels.Tokenizers;
using Orleans.MoE.Kernels.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>
/// A training checkpoint of a GPT/MoE model. Layout (all verified through the manifest on open):
/// <c>config.json</c>, <c>state.json</c> (step, data position, tokenizer, optimiser step),
/// <c>dense.safetensors</c> (every non-expert parameter with its AdamWOptimizer moments as NAME.exp_avg / NAME.exp_avg_sq),
/// and one <c>expert-L{layer}-E{global id}.safetensors</c> per expert holding w1, w2 and their moments, so a later
/// run can place experts on any number of ranks.
/// </summary>
public sealed class ModelCheckpoint
{
    const string ConfigFile = "config.json", StateFile = "state.json";
    public const string DenseFile = "dense.safetensors";
    const string Average = ExpertStacks.Average, Square = ExpertStacks.Square;

    readonly CheckpointDirectory directory;

    ModelCheckpoint(CheckpointDirectory directory, JobConfig config, CheckpointState state)
    {
        this.directory = directory;
        Config = config;
        State = state;
    }

    public JobConfig Config { get; }
    public string Path => directory.Path;
    public long Step => State.Step;
    public SamplerPosition DataPosition => new(State.DataEpoch, State.DataIndex);
    public ITextTokenizer Tokenizer => TokenizerFactory.Create(State.Tokenizer);
    CheckpointState State { get; }

    public static string ExpertFile(int layer, int globalExpert) =>
        string.Create(CultureInfo.InvariantCulture, $"expert-L{layer:D2}-E{globalExpert:D3}.safetensors");

    /// <summary>Opens and verifies a checkpoint folder (checksums of every file).</summary>
    public static ModelCheckpoint Open(string path)
    {
        var directory = CheckpointDirectory.Open(path);
        var config = JobConfig.Parse(directory.ReadText(ConfigFile));
        var state = JsonSerializer.Deserialize<CheckpointState>(directory.ReadText(StateFile), JobConfig.JsonOptions)
                    ?? throw new CorruptCheckpointException(directory.Path, StateFile, "is empty");
        return new ModelCheckpoint(directory, config, state);
    }

    /// <summary>
    /// Writes step-NNNNNN under <paramref name="parent"/> atomically and returns its path. On several ranks this is
    /// collective: rank 0 writes the checkpoint, the first holder of each expert sends it its weights and moments
    /// one expert at a time (no rank ever holds the whole model), and every rank returns once it is committed.
    /// </summary>
    public static string Save(string parent, JobConfig config, string tokenizer, GptModel model, AdamWOptimizer optimizer, long step, SamplerPosition position, RankGroups? ranks = null)
    {
        string final = System.IO.Path.GetFullPath(System.IO.Path.Combine(parent, CheckpointDirectory.StepName(step)));
        if (ranks is { Rank: > 0 })
        {
            SendExperts(model, optimizer, ranks);
            ranks.World.Barrier();
            return final;
        }
        Directory.CreateDirectory(parent);
        string written;
        using (var scope = torch.NewDisposeScope())
        using (var writer = CheckpointDirectory.Create(final))
        {
            writer.WriteText(ConfigFile, config.ToJson());
            writer.WriteText(StateFile, JsonSerializer.Serialize(
                new CheckpointState(step, position.Epoch, position.Index, tokenizer, optimizer.StepCount), JobConfig.JsonOptions));

            var dense = new Dictionary<string, Tensor>();
            foreach (var (name, p) in ExpertStacks.Dense(model))
            {
                var (m, v) = optimizer.Moments[name];
                dense[name] = p;
                dense[name + Average] = m;
                dense[name + Square] = v;
            }
            writer.WriteTensors(DenseFile, dense);

            foreach (var moe in model.MoeLayers)
            {
                var local = ExpertStacks.Of(model, optimizer, moe.Experts);
                int total = moe.Router.Settings.Experts;
                for (int expert = 0; expert < total; expert++)
                {
                    int owner = ranks?.Layout.FirstHolder(total, expert) ?? 0;
                    var tensors = owner == 0 ? local.Select(t => t.Tensor[expert - moe.Experts.FirstExpert]).ToArray() : Receive(ranks!, owner, local);
                    writer.WriteTensors(ExpertFile(moe.LayerIndex, expert), local.Select((t, i) => (t.Name, tensors[i])).ToDictionary(t => t.Name, t => t.Item2));
                }
            }
            written = writer.Commit().Path;
        }
        ranks?.World.Barrier();
        return written;
    }

    static Tensor[] Receive(RankGroups ranks, int owner, (string Name, Tensor Tensor)[] like)
    {
        var received = like.Select(t => torch.empty_like(t.Tensor[0])).ToArray();
        foreach (var t in received) ranks.World.Receive(t, owner);
        return received;
    }

    static void SendExperts(GptModel model, AdamWOptimizer optimizer, RankGroups ranks)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var moe in model.MoeLayers)
        {
            int total = moe.Router.Settings.Experts;
            var local = ExpertStacks.Of(model, optimizer, moe.Experts);
            for (int expert = 0; expert < total; expert++)
            {
                if (ranks.Layout.FirstHolder(total, expert) != ranks.Rank) continue;
                foreach (var (_, tensor) in local) ranks.World.Send(tensor[expert - moe.Experts.FirstExpert], 0);
            }
        }
    }

    /// <summary>Fails before any work if the run's model differs from the one saved.</summary>
    public void RequireCompatible(JobConfig config)
    {
        string Describe(JobConfig c) => JsonSerializer.Serialize(new { c.Model, c.Moe }, JobConfig.JsonOptions);
        if (Describe(config) != Describe(Config))
            throw new ConfigException("model", $"differs from the checkpoint's model in {Path}; resume with the checkpoint's own config");
    }

    /// <summary>Builds the saved model on a device, weights restored, ready for evaluation.</summary>
    public GptModel LoadModel(Device device)
    {
        var model = new GptModel(Config.Model, Config.Moe, Tokenizer.VocabSize);
        Restore(model, null);
        model.to(device);
        model.ComputeType = ComputePrecision.For(Config.Training.Precision, device);
        model.eval();
        return model;
    }

    /// <summary>Every non-expert tensor (weights and their optimiser moments) by parameter name, on the CPU.</summary>
    public SafeTensorsContent ReadDense() => directory.ReadTensors(DenseFile);

    /// <summary>One expert's tensors (w1 [M, F], w2 [F, M] and their moments), on the CPU.</summary>
    public SafeTensorsContent ReadExpert(int layer, int globalExpert) => directory.ReadTensors(ExpertFile(layer, globalExpert));

    /// <summary>Copies weights (and, when given, optimiser moments and step) into a model of the same shape.</summary>
    public void Restore(GptModel model, AdamWOptimizer? optimizer)
    {
        using var noGrad = torch.no_grad();
        using (var dense = directory.ReadTensors(DenseFile))
        {
            foreach (var (name, p) in ExpertStacks.Dense(model))
            {
                p.copy_(Required(dense.Tensors, name, DenseFile));
                optimizer?.LoadMoments(name, Required(dense.Tensors, name + Average, DenseFile), Required(dense.Tensors, name + Square, DenseFile));
            }
        }
        foreach (var moe in model.MoeLayers)
        {
            var bank = moe.Experts;
            string n1 = ExpertStacks.NameOf(model, bank.W1), n2 = ExpertStacks.NameOf(model, bank.W2);
            for (int j = 0; j < bank.Count; j++)
            {
                string file = ExpertFile(moe.LayerIndex, bank.FirstExpert + j);
                using var content = directory.ReadTensors(file);
                var t = content.Tensors;
                bank.W1[j].copy_(Required(t, "w1", file));
                bank.W2[j].copy_(Required(t, "w2", file));
                if (optimizer is null) continue;
                optimizer.Moments[n1].M[j].copy_(Required(t, "w1" + Average, file));
                optimizer.Moments[n1].V[j].copy_(Required(t, "w1" + Square, file));
                optimizer.Moments[n2].M[j].copy_(Required(t, "w2" + Average, file));
                optimizer.Moments[n2].V[j].copy_(Required(t, "w2" + Square, file));
            }
        }
        if (optimizer is not null) optimizer.StepCount = State.OptimizerStep;
    }

    Tensor Required(IReadOnlyDictionary<string, Tensor> tensors, string name, string file) =>
        tensors.TryGetValue(name, out var t) ? t : throw new CorruptCheckpointException(directory.Path, file, $"has no tensor '{name}'");

    sealed record CheckpointState(long Step, long DataEpoch, long DataIndex, string Tokenizer, long OptimizerStep);
}
