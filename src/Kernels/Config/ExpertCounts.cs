using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orleans.MoE.Kernels.Config;

/// <summary>
/// Expert count per MoE layer. A pyramid is written as runs: "32x10,64x2" is ten layers of 32 experts
/// followed by two of 64 (the paper's PR-MoE-32/64); a single number applies to every MoE layer.
/// </summary>
[JsonConverter(typeof(ExpertCountsJsonConverter))]
public sealed record ExpertCounts(IReadOnlyList<int> PerLayer, bool IsUniform)
{
    public static ExpertCounts Uniform(int count) => new([count], true);

    /// <summary>Parses "8", "32x10,64x2" or "16,16,32".</summary>
    public static ExpertCounts Parse(string text)
    {
        var counts = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            string[] run = part.Split(['x', '×'], StringSplitOptions.TrimEntries);
            if (run.Length > 2 || !int.TryParse(run[0], NumberStyles.None, CultureInfo.InvariantCulture, out int experts) ||
                (run.Length == 2 && !int.TryParse(run[1], NumberStyles.None, CultureInfo.InvariantCulture, out _)))
                throw new ConfigException("moe.experts", $"'{part}' is not 'N' or 'NxLAYERS' (e.g. \"32x10,64x2\")");
            int repeat = run.Length == 2 ? int.Parse(run[1], CultureInfo.InvariantCulture) : 1;
            counts.AddRange(Enumerable.Repeat(experts, repeat));
        }
        if (counts.Count == 0) throw new ConfigException("moe.experts", "is empty");
        return new ExpertCounts(counts, counts.Count == 1 && !text.Contains(','));
    }

    /// <summary>Expert counts for exactly <paramref name="moeLayerCount"/> MoE layers.</summary>
    public IReadOnlyList<int> ForLayers(int moeLayerCount)
    {
        if (IsUniform) return Enumerable.Repeat(PerLayer[0], moeLayerCount).ToArray();
        if (PerLayer.Count != moeLayerCount)
            throw new ConfigException("moe.experts", $"lists {PerLayer.Count} MoE layers but the placement gives {moeLayerCount}");
        return PerLayer;
    }

    public override string ToString()
    {
        if (IsUniform) return PerLayer[0].ToString(CultureInfo.InvariantCulture);
        var runs = new List<string>();
        for (int i = 0; i < PerLayer.Count;)
        {
            int j = i;
            while (j < PerLayer.Count && PerLayer[j] == PerLayer[i]) j++;
            runs.Add($"{PerLayer[i]}x{j - i}");
            i = j;
        }
        return string.Join(",", runs);
    }
}

internal sealed class ExpertCountsJsonConverter : JsonConverter<ExpertCounts>
{
    public override ExpertCounts Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Number => ExpertCounts.Uniform(reader.GetInt32()),
            JsonTokenType.String => ExpertCounts.Parse(reader.GetString()!),
            JsonTokenType.StartArray => new ExpertCounts(JsonSerializer.Deserialize<int[]>(ref reader, options)!, false),
            _ => throw new ConfigException("moe.experts", "expected a number, a pattern like \"32x10,64x2\" or a list"),
        };

    public override void Write(Utf8JsonWriter writer, ExpertCounts value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}
