using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Grains.Device;

namespace Orleans.MoE.Silo.Inference;

/// <summary>
/// The silo's OpenAI-style API: <c>POST /v1/completions</c> (whole, or streamed as server-sent events),
/// <c>GET /v1/models</c> and <c>GET /health</c>. Requests go through the deployment's router grain; a client that
/// disconnects cancels its request, which frees its batch slot.
/// </summary>
public static class CompletionEndpoints
{
    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static IEndpointRouteBuilder MapCompletions(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v1/completions", Complete);
        endpoints.MapGet("/v1/models", async (IGrainFactory grains) =>
        {
            var cluster = grains.GetGrain<IClusterGrain>(IClusterGrain.Key);
            var states = await Task.WhenAll((await cluster.ListDeployments()).Select(name => grains.GetGrain<IDeploymentGrain>(name).GetState()));
            return Results.Json(new
            {
                @object = "list",
                data = states.Select(s => new
                {
                    id = s.Spec.Name,
                    @object = "model",
                    created = s.Created.ToUnixTimeSeconds(),
                    owned_by = "orleans-moe",
                    status = s.Status.ToString().ToLowerInvariant(),
                    replicas = s.Replicas.Count,
                    context_length = s.ContextLength,
                }),
            }, Json);
        });
        endpoints.MapGet("/health", async (IGrainFactory grains, SiloIdentity silo) =>
        {
            var names = await grains.GetGrain<IClusterGrain>(IClusterGrain.Key).ListDeployments();
            return Results.Json(new { status = "ok", silo = silo.Name, device = silo.Device, deployments = names }, Json);
        });
        return endpoints;
    }

    static async Task Complete(HttpContext http, IGrainFactory grains)
    {
        var aborted = http.RequestAborted;
        CompletionParameters parameters;
        try
        {
            using var body = await JsonDocument.ParseAsync(http.Request.Body, cancellationToken: aborted);
            parameters = CompletionParameters.Parse(body.RootElement);
        }
        catch (JsonException e)
        {
            await Error(http, StatusCodes.Status400BadRequest, "invalid_request_error", null, $"the body is not valid JSON: {e.Message}");
            return;
        }
        catch (CompletionParameterException e)
        {
            await Error(http, StatusCodes.Status400BadRequest, "invalid_request_error", e.Param, e.Message);
            return;
        }

        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var stream = grains.GetGrain<IInferenceRouterGrain>(parameters.Model).Complete(parameters.Request, aborted).GetAsyncEnumerator(aborted);
        try
        {
            bool any;
            try
            {
                // The first piece decides the status: a refused or invalid request has not written anything yet.
                any = await stream.MoveNextAsync();
            }
            catch (KeyNotFoundException e)
            {
                await Error(http, StatusCodes.Status404NotFound, "invalid_request_error", "model", e.Message, "model_not_found");
                return;
            }
            catch (InferenceBusyException e)
            {
                http.Response.Headers.RetryAfter = "1";
                await Error(http, StatusCodes.Status429TooManyRequests, "server_busy", null, e.Message);
                return;
            }
            catch (InferenceUnavailableException e)
            {
                await Unavailable(http, e.Message);
                return;
            }
            catch (ArgumentException e)
            {
                await Error(http, StatusCodes.Status400BadRequest, "invalid_request_error", ParamOf(e.Message), e.Message);
                return;
            }
            if (parameters.Stream) await Stream(http, stream, any, id, created, parameters.Model, aborted);
            else await Whole(http, stream, any, id, created, parameters.Model);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away; disposing the stream below cancels the request on its replica.
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
        {
            // The replica was lost mid-way: a retryable error, as an event when the stream has begun.
            string message = $"the replica serving this request was lost ({e.Message}); retry";
            if (!http.Response.HasStarted) await Unavailable(http, message);
            else await http.Response.WriteAsync($"data: {JsonSerializer.Serialize(new { error = new { message, type = "replica_lost" } }, Json)}\n\n", CancellationToken.None);
        }
        finally
        {
            try
            {
                await stream.DisposeAsync();
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
            {
                // Nothing is left to cancel on a replica that is gone.
            }
        }
    }

    static async Task Whole(HttpContext http, IAsyncEnumerator<CompletionChunk> stream, bool any, string id, long created, string model)
    {
        var text = new StringBuilder();
        CompletionChunk? last = null;
        for (bool more = any; more; more = await stream.MoveNextAsync())
        {
            text.Append(stream.Current.Text);
            last = stream.Current;
        }
        if (last is not null) http.Response.Headers["X-Moe-Replica"] = last.Replica;
        await http.Response.WriteAsJsonAsync(new
        {
            id,
            @object = "text_completion",
            created,
            model,
            choices = new[] { new { text = text.ToString(), index = 0, logprobs = (object?)null, finish_reason = last?.FinishReason } },
            usage = Usage(last),
        }, Json);
    }

    static async Task Stream(HttpContext http, IAsyncEnumerator<CompletionChunk> stream, bool any, string id, long created, string model, CancellationToken aborted)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        for (bool more = any; more; more = await stream.MoveNextAsync())
        {
            var chunk = stream.Current;
            var payload = new
            {
                id,
                @object = "text_completion",
                created,
                model,
                choices = new[] { new { text = chunk.Text, index = 0, logprobs = (object?)null, finish_reason = chunk.FinishReason } },
                usage = chunk.FinishReason is null ? null : Usage(chunk),
                replica = chunk.Replica,
            };
            await http.Response.WriteAsync($"data: {JsonSerializer.Serialize(payload, Json)}\n\n", aborted);
            await http.Response.Body.FlushAsync(aborted);
        }
        await http.Response.WriteAsync("data: [DONE]\n\n", aborted);
    }

    static object? Usage(CompletionChunk? last) => last is null ? null : new
    {
        prompt_tokens = last.PromptTokens,
        completion_tokens = last.CompletionTokens,
        total_tokens = last.PromptTokens + last.CompletionTokens,
    };

    /// <summary>The parameter an engine message names ("prompt: …"), if it names one.</summary>
    static string? ParamOf(string message)
    {
        int colon = message.IndexOf(':', StringComparison.Ordinal);
        string head = colon > 0 ? message[..colon] : "";
        return head is "prompt" or "max_tokens" or "temperature" or "top_p" or "stop" or "seed" ? head : null;
    }

    static Task Unavailable(HttpContext http, string message)
    {
        http.Response.Headers.RetryAfter = "1";
        return Error(http, StatusCodes.Status503ServiceUnavailable, "replica_unavailable", null, message);
    }

    static Task Error(HttpContext http, int status, string type, string? param, string message, string? code = null)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new { error = new { message, type, param, code } }, Json);
    }
}
