using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Tests;

public class TextFileCorpusTests
{
    [Fact]
    public void LoadsAFileAsOneText()
    {
        string path = Path.Combine(Path.GetTempPath(), $"moe-text-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(path, "Ünïcode line one\nline two\n");
            var texts = TextFileCorpus.Load(path);
            Assert.Equal("Ünïcode line one\nline two\n", Assert.Single(texts).Text);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MissingFileIsNamedInTheError()
    {
        string path = Path.Combine(Path.GetTempPath(), $"moe-missing-{Guid.NewGuid():N}.txt");
        var e = Assert.Throws<FileNotFoundException>(() => TextFileCorpus.Load(path));
        Assert.Contains(path, e.Message);
    }
}
