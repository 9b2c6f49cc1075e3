using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>
/// Builds one checkpoint in a temporary sibling directory and publishes it with a rename on <see cref="Commit"/>,
/// so a reader never sees a half-written checkpoint. Disposing without committing deletes the temporary files.
/// </summary>
public sealed partial class CheckpointWriter : IDisposable
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private readonly Dictionary<string, CheckpointFileEntry> files = new(StringComparer.Ordinal);
    private bool committed;

    internal CheckpointWriter(string directory)
    {
        FinalDirectory = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        TemporaryDirectory = $"{FinalDirectory}.tmp-{Guid.NewGuid():N}";
        Directory.CreateDirectory(TemporaryDirectory);
    }

    /// <summary>Where the checkpoint appears on commit.</summary>
    public string FinalDirectory { get; }

    /// <summary>Where files are written until commit.</summary>
    public string TemporaryDirectory { get; }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SafeFileName();

    /// <summary>Writes named tensors (any device) and optional metadata as the safetensors file <paramref name="fileName"/>.</summary>
    public void WriteTensors(string fileName, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteFile(fileName, stream => SafeTensorsFile.Write(stream, tensors, metadata));

    /// <summary>Writes <paramref name="content"/> as the UTF-8 file <paramref name="fileName"/> (configs, tokenizer name, ...).</summary>
    public void WriteText(string fileName, string content) =>
        WriteFile(fileName, stream => stream.Write(Utf8.GetBytes(content)));

    /// <summary>Serialises <paramref name="value"/> with System.Text.Json as the file <paramref name="fileName"/>.</summary>
    public void WriteJson<T>(string fileName, T value) =>
        WriteFile(fileName, stream => JsonSerializer.Serialize(stream, value, CheckpointManifest.Json));

    /// <summary>
    /// Writes manifest.json and renames the temporary directory to its final name. An existing checkpoint of
    /// that name is moved aside first and deleted only after the new one is in place.
    /// </summary>
    public CheckpointDirectory Commit()
    {
        ObjectDisposedException.ThrowIf(committed, this);
        string manifestPath = Path.Combine(TemporaryDirectory, CheckpointManifest.FileName);
        var manifest = new CheckpointManifest(CheckpointManifest.CurrentVersion, new(files, StringComparer.Ordinal));
        using (var stream = new FileStream(manifestPath, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, manifest, CheckpointManifest.Json);
            stream.Flush(flushToDisk: true);
        }

        string? displaced = null;
        if (Directory.Exists(FinalDirectory))
        {
            displaced = $"{FinalDirectory}.old-{Guid.NewGuid():N}";
            Directory.Move(FinalDirectory, displaced);
        }
        Directory.Move(TemporaryDirectory, FinalDirectory);
        committed = true;
        if (displaced is not null) Directory.Delete(displaced, recursive: true);
        return CheckpointDirectory.Open(FinalDirectory);
    }

    /// <summary>Deletes the temporary directory unless the checkpoint was committed.</summary>
    public void Dispose()
    {
        if (!committed && Directory.Exists(TemporaryDirectory)) Directory.Delete(TemporaryDirectory, recursive: true);
        committed = true;
    }

    private void WriteFile(string fileName, Action<Stream> write)
    {
        ObjectDisposedException.ThrowIf(committed, this);
        ArgumentNullException.ThrowIfNull(fileName);
        if (!SafeFileName().IsMatch(fileName) || fileName == CheckpointManifest.FileName)
            throw new ArgumentException(
                $"checkpoint file name '{fileName}' must be a plain name of letters, digits, '.', '_' or '-' and not {CheckpointManifest.FileName}",
                nameof(fileName));
        if (files.ContainsKey(fileName))
            throw new ArgumentException($"checkpoint file '{fileName}' was already written", nameof(fileName));

        string path = Path.Combine(TemporaryDirectory, fileName);
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            write(stream);
            // Every file reaches the disk before the manifest that vouches for it is written.
            stream.Flush(flushToDisk: true);
        }
        files[fileName] = CheckpointManifest.Describe(path);
    }
}
