using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orleans.MoE.Kernels.Config;

/// <summary>Which decoder layers carry an MoE MLP: a named rule or an explicit list of layer indices.</summary>
[JsonConverter(typeof(LayerPlacementJsonConverter))]
public sealed record LayerPlacement(string Rule, IReadOnlyList<int> Explicit)
{
    public static readonly string[] Rules = ["every_other", "all", "first_half", "second_half", "none"];

    public static LayerPlacement EveryOther { get; } = new("every_other", []);

    /// <summary>The MoE layer indices for a model of <paramref name="layerCount"/> layers, ascending.</summary>
    public IReadOnlyList<int> Resolve(int layerCount)
    {
        return Rule switch
        {
            // DeepSpeed-MoE puts experts on every other layer, starting with the second (1, 3, 5, ...).
            "every_other" => Enumerable.Range(0, layerCount).Where(i => i % 2 == 1).ToArray(),
            "all" => Enumerable.Range(0, layerCount).ToArray(),
            "first_half" => Enumerable.Range(0, layerCount / 2).ToArray(),
            "second_half" => Enumerable.Range(layerCount / 2, layerCount - layerCount / 2).ToArray(),
            "none" => [],
            "explicit" => Explicit.Order().ToArray(),
            _ => throw new ConfigException("moe.layers", $"'{Rule}' is not one of: {string.Join(", ", Rules)}, or a list of layer indices"),
        };
    }

    public override string ToString() => Rule == "explicit" ? "[" + string.Join(",", Explicit) + "]" : Rule;
}

internal sealed class LayerPlacementJsonConverter : JsonConverter<LayerPlacement>
{
    public override LayerPlacement Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            string rule = reader.GetString()!;
            if (!LayerPlacement.Rules.Contains(rule))
                throw new ConfigException("moe.layers", $"'{rule}' is not one of: {string.Join(", ", LayerPlacement.Rules)}, or a list of layer indices");
            return new LayerPlacement(rule, []);
        }
        if (reader.TokenType == JsonTokenType.StartArray)
            return new LayerPlacement("explicit", JsonSerializer.Deserialize<int[]>(ref reader, options)!);
        throw new ConfigException("moe.layers", "expected a rule name or a list of layer indices");
    }

    public override void Write(Utf8JsonWriter writer, LayerPlacement value, JsonSerializerOptions options)
    {
        if (value.Rule == "explicit") JsonSerializer.Serialize(writer, value.Explicit, options);
        else writer.WriteStringValue(value.Rule);
    }
}
