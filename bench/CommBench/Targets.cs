namespace Orleans.MoE.Bench.Comm;

/// <summary>TARGETS.md's all-to-all rows (bf16, equal splits, one H200 node): a latency or a bus bandwidth to reach.</summary>
public static class Targets
{
    static readonly Dictionary<(int Gpus, int Megabytes), string> AllToAll = new()
    {
        [(2, 1)] = "35 µs",
        [(2, 64)] = "239 GB/s",
        [(2, 256)] = "281 GB/s",
        [(4, 1)] = "42 µs",
        [(4, 64)] = "260 GB/s",
        [(4, 256)] = "298 GB/s",
    };

    public static string For(string operation, int gpus, int megabytes) =>
        operation == "all-to-all" && AllToAll.TryGetValue((gpus, megabytes), out var target) ? target : "";

    /// <summary>Whether a result meets its target ("" when there is none).</summary>
    public static string Verdict(string target, double microseconds, double busGigabytesPerSecond)
    {
        if (target.Length == 0) return "";
        double value = double.Parse(target.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        bool met = target.EndsWith("µs", StringComparison.Ordinal) ? microseconds <= value : busGigabytesPerSecond >= value;
        return met ? "met" : "missed";
    }
}
