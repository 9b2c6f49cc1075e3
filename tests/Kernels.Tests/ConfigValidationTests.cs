using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Tests;

public class ConfigValidationTests
{
    [Theory]
    [InlineData("""{"moe": {"top_k": 0}}""", "moe.top_k")]
    [InlineData("""{"moe": {"noisy_gate_policy": "gaussian"}}""", "moe.noisy_gate_policy")]
    [InlineData("""{"moe": {"router_dtype": "fp16"}}""", "moe.router_dtype")]
    [InlineData("""{"moe": {"layers": "middle"}}""", "moe.layers")]
    [InlineData("""{"moe": {"experts": "32x10,64x"}}""", "moe.experts")]
    [InlineData("""{"model": {"heads": 3}}""", "model.heads")]
    [InlineData("""{"model": {"positions": "alibi"}}""", "model.positions")]
    [InlineData("""{"training": {"batch_size": 16, "micro_batch_size": 5}}""", "training.micro_batch_size")]
    [InlineData("""{"training": {"precision": "fp8"}}""", "training.precision")]
    [InlineData("""{"model": {"layerz": 4}}""", "model")]
    [InlineData("""{"data": {"source": "files"}}""", "data.train_file")]
    public void BadFieldsAreNamed(string json, string field)
    {
        var e = Assert.Throws<ConfigException>(() => JobConfig.Parse(json));
        Assert.StartsWith(field, e.Field);
    }

    [Fact]
    public void AllowedValuesAreListed()
    {
        var e = Assert.Throws<ConfigException>(() => JobConfig.Parse("""{"moe": {"noisy_gate_policy": "gaussian"}}"""));
        Assert.Contains("none, jitter, rsample", e.Message);
    }

    [Fact]
    public void PyramidListMustMatchThePlacement()
    {
        // 4 layers, every other → 2 MoE layers, but the pyramid lists 3.
        var e = Assert.Throws<ConfigException>(() => JobConfig.Parse("""{"model": {"layers": 4}, "moe": {"experts": "4x2,8x1"}}"""));
        Assert.Equal("moe.experts", e.Field);
    }

    [Theory]
    [InlineData("every_other", 6, new[] { 1, 3, 5 })]
    [InlineData("first_half", 6, new[] { 0, 1, 2 })]
    [InlineData("second_half", 6, new[] { 3, 4, 5 })]
    public void PlacementsResolveToLayerIndices(string rule, int layers, int[] expected) =>
        Assert.Equal(expected, new LayerPlacement(rule, []).Resolve(layers));

    [Fact]
    public void EveryShippedConfigIsValid()
    {
        string root = Training.TinyJobs.RepositoryRoot;
        foreach (string file in Directory.GetFiles(Path.Combine(root, "configs"), "*.json"))
            JobConfig.Load(file);
    }

    [Fact]
    public void ErrorsFromAFileNameTheFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"moe": {"top_k": 9}}""");
        var e = Assert.Throws<ConfigException>(() => JobConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("moe.top_k", e.Message);
    }
}
