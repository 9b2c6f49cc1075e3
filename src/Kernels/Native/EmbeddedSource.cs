namespace Orleans.MoE.Kernels.Native;

/// <summary>Native source files embedded in this assembly, compiled on the GPU host at run time.</summary>
static class EmbeddedSource
{
    public static string Read(string fileName)
    {
        var assembly = typeof(EmbeddedSource).Assembly;
        string name = assembly.GetManifestResourceNames().Single(n => n.EndsWith(fileName, StringComparison.Ordinal));
        using var reader = new StreamReader(assembly.GetManifestResourceStream(name)!);
        return reader.ReadToEnd();
    }
}
