using Orleans.MoE.Kernels.Checkpoints;
using Xunit;

namespace Orleans.MoE.Tests;

/// <summary>Compares the tensors of two checkpoints, file by file and name by name.</summary>
internal static class CheckpointAssert
{
    /// <summary>Both hold the same tensor files and names, every tensor equal within <paramref name="tolerance"/> (0: bit for bit).</summary>
    public static void SameTensors(string actualCheckpoint, string expectedCheckpoint, double tolerance)
    {
        var actual = CheckpointDirectory.Open(actualCheckpoint);
        var expected = CheckpointDirectory.Open(expectedCheckpoint);
        var files = expected.Files.Keys.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(files, actual.Files.Keys.Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal)).Order());
        foreach (var file in files)
        {
            using var a = actual.ReadTensors(file);
            using var e = expected.ReadTensors(file);
            Assert.Equal(e.Tensors.Keys.Order(), a.Tensors.Keys.Order());
            foreach (var (name, tensor) in e.Tensors)
            {
                if (tolerance == 0)
                {
                    Assert.True(a.Tensors[name].equal(tensor).all().item<bool>(), $"{file}/{name} differs");
                    continue;
                }
                double difference = (a.Tensors[name] - tensor).abs().max().item<float>();
                Assert.True(difference < tolerance, $"{file}/{name} differs by {difference}");
            }
        }
    }
}
