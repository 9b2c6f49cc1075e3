using System.Security.Cryptography;
using System.Text;
using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Native;

/// <summary>Native source files embedded in this assembly, compiled on the GPU host at run time, and where their builds are kept.</summary>
static class EmbeddedSource
{
    public static string Read(string fileName)
    {
        var assembly = typeof(EmbeddedSource).Assembly;
        string name = assembly.GetManifestResourceNames().Single(n => n.EndsWith(fileName, StringComparison.Ordinal));
        using var reader = new StreamReader(assembly.GetManifestResourceStream(name)!);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// The cache file for a build of <paramref name="source"/> for <paramref name="builtFor"/> (what else the build
    /// depends on): <c>&lt;cache&gt;/native/&lt;stem&gt;-&lt;hash&gt;&lt;suffix&gt;</c>, so a changed source or target builds anew.
    /// </summary>
    public static string CachePath(string stem, string source, string builtFor, string suffix)
    {
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(source + "\n" + builtFor)))[..16].ToLowerInvariant();
        return Path.Combine(CacheDirectory.Default(), "native", $"{stem}-{hash}{suffix}");
    }
}
