using System.Globalization;

namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Byte counts as people write them. KB, MB, GB are binary (1 MB = 2^20 B), as in the calibration's "1 MB".</summary>
public static class ByteSize
{
    static readonly (string Suffix, double Factor)[] Units =
    [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
    ];

    /// <summary>"64KB", "1 MiB", "256M", "4096" → bytes.</summary>
    public static double Parse(string text)
    {
        string t = text.Trim();
        double factor = 1;
        foreach (var (suffix, f) in Units)
        {
            if (!t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) continue;
            t = t[..^suffix.Length].Trim();
            factor = f;
            break;
        }
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !(value > 0))
            throw new ArgumentException($"'{text}' is not a positive size (examples: 64KB, 1MB, 256MB)");
        return value * factor;
    }

    /// <summary>The largest unit that keeps the number ≥ 1: "64 KB", "1.5 MB", "512 B".</summary>
    public static string Format(double bytes)
    {
        var (suffix, factor) = bytes >= 1 << 30 ? ("GB", 1 << 30) : bytes >= 1 << 20 ? ("MB", 1 << 20) : bytes >= 1 << 10 ? ("KB", 1 << 10) : ("B", 1);
        double value = bytes / factor;
        return string.Create(CultureInfo.InvariantCulture, $"{(value >= 100 || value == Math.Floor(value) ? value.ToString("F0", CultureInfo.InvariantCulture) : value.ToString("G3", CultureInfo.InvariantCulture))} {suffix}");
    }
}
