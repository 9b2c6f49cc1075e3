using System.Text.Json;
using Orleans.MoE.Kernels.Config;

namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>
/// Reads a <see cref="Calibration"/> from JSON: one run <c>{"gpus": 4, "points": [{"bytes_per_rank": 1048576,
/// "seconds": 4.2e-5}, …]}</c> or several, <c>{"source": "…", "runs": [{"gpus": 2, "points": […]}, …]}</c>.
/// Points at two or more GPU counts are needed to separate the per-peer cost from the per-call cost.
/// Errors name the file and the field (<c>runs[1].points[0].seconds</c>).
/// </summary>
public static class CalibrationFile
{
    public static Calibration Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"calibration file not found: {path}", path);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ConfigException("$", $"not valid JSON ({e.Message})", path);
        }
        using (document)
        {
            var calibration = Read(document.RootElement, path);
            try
            {
                // A file that parses but cannot be fitted (one size only, time falling with size) fails here, named.
                IntraNodeFit.Fit(calibration);
            }
            catch (InvalidOperationException e)
            {
                throw new ConfigException("points", e.Message, path);
            }
            return calibration;
        }
    }

    static Calibration Read(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ConfigException("$", "must be a JSON object", path);
        RejectUnknown(root, "", path, "source", "gpus", "points", "runs");
        string source = root.TryGetProperty("source", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : path;
        var points = new List<CalibrationPoint>();
        if (root.TryGetProperty("runs", out var runs))
        {
            if (runs.ValueKind != JsonValueKind.Array || runs.GetArrayLength() == 0)
                throw new ConfigException("runs", "must be a non-empty array of {\"gpus\", \"points\"}", path);
            int i = 0;
            foreach (var run in runs.EnumerateArray()) points.AddRange(ReadRun(run, $"runs[{i++}].", path));
        }
        else
        {
            points.AddRange(ReadRun(root, "", path));
        }
        return new Calibration(source, points);
    }

    static IEnumerable<CalibrationPoint> ReadRun(JsonElement run, string prefix, string path)
    {
        if (run.ValueKind != JsonValueKind.Object) throw new ConfigException(prefix.TrimEnd('.'), "must be an object", path);
        if (prefix.Length > 0) RejectUnknown(run, prefix, path, "gpus", "points");
        if (!run.TryGetProperty("gpus", out var g) || !g.TryGetInt32(out int gpus) || gpus < 2)
            throw new ConfigException(prefix + "gpus", "must be an integer ≥ 2 (the GPUs in the measured all-to-all)", path);
        if (!run.TryGetProperty("points", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            throw new ConfigException(prefix + "points", "must be a non-empty array of {\"bytes_per_rank\", \"seconds\"}", path);
        var points = new List<CalibrationPoint>();
        int i = 0;
        foreach (var point in list.EnumerateArray())
        {
            string at = $"{prefix}points[{i++}]";
            if (point.ValueKind != JsonValueKind.Object) throw new ConfigException(at, "must be an object", path);
            RejectUnknown(point, at + ".", path, "bytes_per_rank", "seconds");
            points.Add(new CalibrationPoint(gpus, Positive(point, at, "bytes_per_rank", path), Positive(point, at, "seconds", path)));
        }
        return points;
    }

    static double Positive(JsonElement point, string at, string name, string path)
    {
        if (!point.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !(x > 0))
            throw new ConfigException($"{at}.{name}", "must be a positive number", path);
        return x;
    }

    static void RejectUnknown(JsonElement element, string prefix, string path, params string[] known)
    {
        foreach (var property in element.EnumerateObject())
        {
            if (!known.Contains(property.Name))
                throw new ConfigException(prefix + property.Name, $"unknown field (expected {string.Join(", ", known)})", path);
        }
    }
}
