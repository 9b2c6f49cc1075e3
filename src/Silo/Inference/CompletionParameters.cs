using System.Text.Json;
using Orleans.MoE.Grains.Contracts;

namespace Orleans.MoE.Silo.Inference;

/// <summary>
/// The body of <c>POST /v1/completions</c> read field by field, so that a bad value is answered with the name of the
/// field (OpenAI's "param"). Fields this server does not use (user, logprobs, …) are ignored, as OpenAI clients send them.
/// </summary>
public sealed record CompletionParameters(string Model, CompletionRequest Request, bool Stream)
{
    public static CompletionParameters Parse(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new CompletionParameterException("", "the body must be a JSON object");
        string model = String(body, "model") ?? throw new CompletionParameterException("model", "model is required");
        string prompt = Prompt(body);
        int maxTokens = Integer(body, "max_tokens") ?? 16;
        if (maxTokens < 1) throw new CompletionParameterException("max_tokens", $"max_tokens is {maxTokens}; it must be at least 1");
        double temperature = Number(body, "temperature") ?? 1.0;
        if (temperature is < 0 or > 2) throw new CompletionParameterException("temperature", $"temperature is {temperature}; it must be between 0 and 2");
        double topP = Number(body, "top_p") ?? 1.0;
        if (topP is <= 0 or > 1) throw new CompletionParameterException("top_p", $"top_p is {topP}; it must be in (0, 1]");
        if (Integer(body, "n") is { } n && n != 1) throw new CompletionParameterException("n", $"n is {n}; this server returns one choice per request");
        bool stream = body.TryGetProperty("stream", out var s) && s.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw new CompletionParameterException("stream", "stream must be true or false"),
        };
        return new CompletionParameters(model, new CompletionRequest
        {
            Prompt = prompt,
            MaxTokens = maxTokens,
            Temperature = temperature,
            TopP = topP,
            Seed = Long(body, "seed"),
            Stop = Stops(body),
        }, stream);
    }

    static string Prompt(JsonElement body)
    {
        if (!body.TryGetProperty("prompt", out var p) || p.ValueKind == JsonValueKind.Null) throw new CompletionParameterException("prompt", "prompt is required");
        if (p.ValueKind == JsonValueKind.String) return p.GetString()!;
        // OpenAI also takes a list of prompts; one per request here.
        if (p.ValueKind == JsonValueKind.Array && p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String) return p[0].GetString()!;
        throw new CompletionParameterException("prompt", "prompt must be a string (or a list of exactly one string)");
    }

    static IReadOnlyList<string> Stops(JsonElement body)
    {
        if (!body.TryGetProperty("stop", out var s) || s.ValueKind == JsonValueKind.Null) return [];
        if (s.ValueKind == JsonValueKind.String) return [s.GetString()!];
        if (s.ValueKind == JsonValueKind.Array && s.GetArrayLength() <= 4 && s.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0))
            return s.EnumerateArray().Select(e => e.GetString()!).ToArray();
        throw new CompletionParameterException("stop", "stop must be a string or a list of up to 4 non-empty strings");
    }

    static string? String(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString() : throw new CompletionParameterException(name, $"{name} must be a string");

    static double? Number(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new CompletionParameterException(name, $"{name} must be a number");

    static long? Long(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l) ? l : throw new CompletionParameterException(name, $"{name} must be an integer");

    static int? Integer(JsonElement body, string name) =>
        Long(body, name) is { } l ? l is >= int.MinValue and <= int.MaxValue ? (int)l : throw new CompletionParameterException(name, $"{name} is out of range") : null;
}

/// <summary>A request parameter the server cannot accept; <see cref="Param"/> names it.</summary>
public sealed class CompletionParameterException(string param, string message) : Exception(message)
{
    public string Param { get; } = param;
}
