using System.Text.Encodings.Web;
using System.Text.Json;

namespace Orleans.MoE.Client.Display;

/// <summary>snake_case JSON on one line, as every --json result is printed (quotes and non-ASCII left readable).</summary>
internal static class JsonOutput
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
