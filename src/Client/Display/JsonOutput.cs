using System.Text.Json;

namespace Orleans.MoE.Client.Display;

/// <summary>snake_case JSON on one line, as every --json result is printed.</summary>
internal static class JsonOutput
{
    public static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}
