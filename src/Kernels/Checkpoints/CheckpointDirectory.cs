using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>
/// A verified checkpoint: a directory of safetensors and small text/JSON files whose manifest.json records
/// every file's size and SHA-256. Only files the manifest vouches for can be read.
/// </summary>
public sealed partial class CheckpointDirectory
{
    private CheckpointDirectory(string path, long? step, IReadOnlyDictionary<string, CheckpointFileEntry> files)
    {
        Path = path;
        Step = step;
        Files = files;
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The training step from a "step-000123" name, or null for other names.</summary>
    public long? Step { get; }

    /// <summary>The files the manifest lists, all verified when this object was opened.</summary>
    public IReadOnlyDictionary<string, CheckpointFileEntry> Files { get; }

    [GeneratedRegex(@"^step-(\d+)$")]
    private static partial Regex StepDirectoryName();

    /// <summary>The directory name for a step: "step-000123" (six digits at least, so names sort by step).</summary>
    public static string StepName(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return $"step-{step.ToString("D6", CultureInfo.InvariantCulture)}";
    }

    /// <summary>Starts writing a checkpoint that will appear at <paramref name="directory"/> on commit.</summary>
    public static CheckpointWriter Create(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        return new CheckpointWriter(directory);
    }

    /// <summary>Opens <paramref name="directory"/>, verifying every file against the manifest.</summary>
    /// <exception cref="CorruptCheckpointException">The manifest is missing or unreadable, or a file is missing or differs.</exception>
    public static CheckpointDirectory Open(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string path = System.IO.Path.GetFullPath(directory).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        if (!Directory.Exists(path)) throw new CorruptCheckpointException(path, null, "the directory does not exist");

        var manifest = ReadManifest(path);
        foreach (var (name, expected) in manifest.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            string filePath = System.IO.Path.Combine(path, name);
            if (System.IO.Path.GetFileName(name) != name)
                throw new CorruptCheckpointException(path, name, "is not a plain file name");
            if (!File.Exists(filePath))
                throw new CorruptCheckpointException(path, name, "is listed in the manifest but missing");
            long size = new FileInfo(filePath).Length;
            if (size != expected.Size)
                throw new CorruptCheckpointException(path, name, $"has {size} bytes, the manifest says {expected.Size}");
            var actual = CheckpointManifest.Describe(filePath);
            if (!string.Equals(actual.Sha256, expected.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new CorruptCheckpointException(
                    path, name, $"has SHA-256 {actual.Sha256}, the manifest says {expected.Sha256}");
        }

        return new CheckpointDirectory(path, StepOf(path), manifest.Files);
    }

    /// <summary>The step of a ".../step-000123" checkpoint path, or null for other names.</summary>
    public static long? StepOf(string path)
    {
        var match = StepDirectoryName().Match(System.IO.Path.GetFileName(path.TrimEnd(System.IO.Path.DirectorySeparatorChar)));
        return match.Success && long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long step) ? step : null;
    }

    /// <summary>
    /// Opens every "step-N" directory under <paramref name="parentDirectory"/>; those that verify come back by
    /// ascending step, the others as skipped with the reason. Temporary and displaced directories are ignored.
    /// </summary>
    public static CheckpointScan ListValid(string parentDirectory)
    {
        ArgumentNullException.ThrowIfNull(parentDirectory);
        var valid = new List<CheckpointDirectory>();
        var skipped = new List<SkippedCheckpoint>();
        if (!Directory.Exists(parentDirectory)) return new CheckpointScan(valid, skipped);

        var candidates = Directory.GetDirectories(parentDirectory)
            .Select(d => (Path: d, Match: StepDirectoryName().Match(System.IO.Path.GetFileName(d))))
            .Where(c => c.Match.Success)
            .Select(c => (c.Path, Step: decimal.Parse(c.Match.Groups[1].Value, CultureInfo.InvariantCulture)))
            .OrderBy(c => c.Step);
        foreach (var (path, _) in candidates)
        {
            try
            {
                valid.Add(Open(path));
            }
            catch (CorruptCheckpointException e)
            {
                skipped.Add(new SkippedCheckpoint(path, e.Message));
            }
        }
        return new CheckpointScan(valid, skipped);
    }

    /// <summary>The verified checkpoint with the highest step under <paramref name="parentDirectory"/>, or null.</summary>
    public static CheckpointDirectory? LatestValid(string parentDirectory) => ListValid(parentDirectory).Valid.LastOrDefault();

    /// <summary>Reads the safetensors file <paramref name="fileName"/> onto the CPU.</summary>
    public SafeTensorsContent ReadTensors(string fileName) => SafeTensorsFile.Read(PathOf(fileName));

    /// <summary>Reads the UTF-8 file <paramref name="fileName"/>.</summary>
    public string ReadText(string fileName) => File.ReadAllText(PathOf(fileName), Encoding.UTF8);

    /// <summary>Deserialises the JSON file <paramref name="fileName"/> written by <see cref="CheckpointWriter.WriteJson{T}"/>.</summary>
    public T ReadJson<T>(string fileName)
    {
        using var stream = File.OpenRead(PathOf(fileName));
        return JsonSerializer.Deserialize<T>(stream, CheckpointManifest.Json)
            ?? throw new CorruptCheckpointException(Path, fileName, "holds JSON null");
    }

    private string PathOf(string fileName)
    {
        if (!Files.ContainsKey(fileName))
            throw new FileNotFoundException($"checkpoint '{Path}' has no file '{fileName}' in its manifest", fileName);
        return System.IO.Path.Combine(Path, fileName);
    }

    private static CheckpointManifest ReadManifest(string path)
    {
        string manifestPath = System.IO.Path.Combine(path, CheckpointManifest.FileName);
        if (!File.Exists(manifestPath))
            throw new CorruptCheckpointException(path, CheckpointManifest.FileName, "is missing (the checkpoint was never committed)");
        try
        {
            using var stream = File.OpenRead(manifestPath);
            var manifest = JsonSerializer.Deserialize<CheckpointManifest>(stream, CheckpointManifest.Json);
            if (manifest?.Files is null)
                throw new CorruptCheckpointException(path, CheckpointManifest.FileName, "has no file list");
            if (manifest.Version != CheckpointManifest.CurrentVersion)
                throw new CorruptCheckpointException(
                    path, CheckpointManifest.FileName, $"has version {manifest.Version}, expected {CheckpointManifest.CurrentVersion}");
            return manifest;
        }
        catch (JsonException e)
        {
            throw new CorruptCheckpointException(path, CheckpointManifest.FileName, $"is not valid JSON: {e.Message}", e);
        }
    }
}
