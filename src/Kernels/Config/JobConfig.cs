using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orleans.MoE.Kernels.Config;

/// <summary>A whole job: model, MoE layers, training, data, seed and device.</summary>
public sealed record JobConfig
{
    public string Name { get; init; } = "job";
    public long Seed { get; init; } = 1234;

    /// <summary>"auto", "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = "auto";

    public ModelConfig Model { get; init; } = new();
    public MoEConfig Moe { get; init; } = new();
    public TrainingConfig Training { get; init; } = new();
    public DataConfig Data { get; init; } = new();
    public ParallelConfig Parallel { get; init; } = new();

    /// <summary>Present for a distillation job: this job's model is the student.</summary>
    public DistillationConfig? Distillation { get; init; }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    /// <summary>Reads and validates a config file; every failure names the file and the field.</summary>
    public static JobConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file '{path}' does not exist", path);
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (ConfigException e) when (e.File is null)
        {
            throw new ConfigException(e.Field, e.Problem, path);
        }
    }

    public static JobConfig Parse(string json)
    {
        JobConfig config;
        try
        {
            config = JsonSerializer.Deserialize<JobConfig>(json, JsonOptions) ?? throw new ConfigException("(root)", "is empty");
        }
        catch (JsonException e)
        {
            throw new ConfigException(string.IsNullOrEmpty(e.Path) ? "(root)" : e.Path.TrimStart('$', '.'), e.Message);
        }
        catch (InvalidOperationException e) when (e.InnerException is ConfigException inner)
        {
            throw inner;
        }
        ConfigValidator.Validate(config);
        return config;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);
}
