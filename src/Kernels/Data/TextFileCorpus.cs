using System.Text;

namespace Orleans.MoE.Kernels.Data;

/// <summary>Uses any UTF-8 text file as a one-document corpus for training or evaluation.</summary>
public static class TextFileCorpus
{
    /// <summary>Reads <paramref name="path"/> as one text whose id is the full path; genre is '-'.</summary>
    public static IReadOnlyList<CorpusText> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
            throw new FileNotFoundException($"text corpus file '{fullPath}' does not exist", fullPath);
        string text = File.ReadAllText(fullPath, Encoding.UTF8);
        return [new CorpusText(fullPath, '-', text)];
    }
}
