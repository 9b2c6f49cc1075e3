using System.Security.Cryptography;
using System.Text.Json;

namespace Orleans.MoE.Kernels.Checkpoints;

/// <summary>manifest.json: the size and checksum of every file of a checkpoint, written last.</summary>
internal sealed record CheckpointManifest(int Version, Dictionary<string, CheckpointFileEntry> Files)
{
    public const string FileName = "manifest.json";

    public const int CurrentVersion = 1;

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
    };

    public static CheckpointFileEntry Describe(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        byte[] hash = SHA256.HashData(stream);
        return new CheckpointFileEntry(stream.Length, Convert.ToHexStringLower(hash));
    }
}
