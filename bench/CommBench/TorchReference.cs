using System.Text.Json;

namespace Orleans.MoE.Bench.Comm;

/// <summary>
/// The same measurements made with torch.distributed (bench/python/a2a_torch.py) in the same session, read from its
/// JSON files so that the table puts both side by side.
/// </summary>
public sealed class TorchReference
{
    readonly Dictionary<(int Gpus, string Operation, int Megabytes), JsonElement> rows = [];

    public static TorchReference Load(string folder)
    {
        var reference = new TorchReference();
        if (!Directory.Exists(folder)) return reference;
        foreach (var file in Directory.GetFiles(folder, "comm-torch-*gpus.json"))
        {
            foreach (var row in JsonDocument.Parse(File.ReadAllText(file)).RootElement.EnumerateArray())
                reference.rows[(row.GetProperty("gpus").GetInt32(), row.GetProperty("op").GetString()!, row.GetProperty("mb").GetInt32())] = row.Clone();
        }
        return reference;
    }

    /// <summary>torch's median latency (µs) and bus bandwidth (GB/s), or NaN when it was not measured.</summary>
    public (double MedianMicroseconds, double BusGigabytesPerSecond) For(int gpus, string operation, int megabytes) =>
        rows.TryGetValue((gpus, operation, megabytes), out var row)
            ? (row.GetProperty("median_us").GetDouble(), row.GetProperty("busbw_GBps").GetDouble())
            : (double.NaN, double.NaN);
}
