using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Kernels.Generation;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>The completions API of a silo serving a tiny PR-MoE checkpoint, over HTTP on loopback.</summary>
public class ServingTests(ServingFixture fixture) : IClassFixture<ServingFixture>
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    static StringContent Body(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    [Fact]
    public async Task ACompletionIsWhatTheModelGivesInProcess()
    {
        using var http = new HttpClient { Timeout = Patience };
        var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions",
            Body(new { model = ServingFixture.Model, prompt = "The jury said", max_tokens = 20, temperature = 0.9, top_p = 0.9, seed = 42 }), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        var choice = json.RootElement.GetProperty("choices")[0];
        string expected = fixture.Alone("The jury said", new SamplingOptions { MaxTokens = 20, Temperature = 0.9, TopP = 0.9, Seed = 42 });
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal("text_completion", json.RootElement.GetProperty("object").GetString());
        var usage = json.RootElement.GetProperty("usage");
        Assert.Equal(13, usage.GetProperty("prompt_tokens").GetInt32()); // the byte tokenizer: one token a byte
        int completion = usage.GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completion, 1, 20);
        Assert.Equal(completion == 20 ? "length" : "stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task AStreamedCompletionArrivesAsServerSentEventsWithTheSameText()
    {
        using var http = new HttpClient { Timeout = Patience };
        var request = new { model = ServingFixture.Model, prompt = "In the morning", max_tokens = 24, temperature = 0, stream = true };
        var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions", Body(request), TestContext.Current.CancellationToken);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices")[0]).ToList();
        Assert.True(chunks.Count > 1, "a 24-token completion came in one piece");
        Assert.All(chunks[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("finish_reason").ValueKind));
        Assert.NotEqual(JsonValueKind.Null, chunks[^1].GetProperty("finish_reason").ValueKind);
        Assert.Equal(fixture.Alone("In the morning", new SamplingOptions { MaxTokens = 24, Temperature = 0 }), string.Concat(chunks.Select(c => c.GetProperty("text").GetString())));
    }

    [Theory]
    [InlineData("""{"model":"tiny","prompt":"x","max_tokens":0}""", 400, "max_tokens")]
    [InlineData("""{"model":"tiny","prompt":"x","top_p":1.5}""", 400, "top_p")]
    [InlineData("""{"model":"tiny","prompt":"x","temperature":"hot"}""", 400, "temperature")]
    [InlineData("""{"model":"tiny","prompt":["a","b"]}""", 400, "prompt")]
    [InlineData("""{"model":"tiny"}""", 400, "prompt")]
    [InlineData("""{"model":"tiny","prompt":"x","n":3}""", 400, "n")]
    [InlineData("""{"model":"tiny","prompt":"x","stop":[1]}""", 400, "stop")]
    [InlineData("""{"prompt":"x"}""", 400, "model")]
    [InlineData("""{"model":"no-such-model","prompt":"x"}""", 404, "model")]
    [InlineData("""{"model":"tiny","prompt":"x",""", 400, null)]
    public async Task BadRequestsAreAnsweredWithTheParameterAtFault(string body, int status, string? param)
    {
        using var http = new HttpClient { Timeout = Patience };
        var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(status, (int)response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        var error = json.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task APromptLongerThanTheContextIsRefusedBeforeItIsQueued()
    {
        using var http = new HttpClient { Timeout = Patience };
        var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions", Body(new { model = ServingFixture.Model, prompt = new string('a', 200) }), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("\"param\":\"prompt\"", text);
        Assert.Contains("200 tokens", text);
    }

    [Fact]
    public async Task ModelsHealthAndTheMoeViewDescribeTheDeployment()
    {
        using var http = new HttpClient { Timeout = Patience };
        using var models = JsonDocument.Parse(await http.GetStringAsync($"{fixture.BaseUrl}/v1/models", TestContext.Current.CancellationToken));
        var model = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal(ServingFixture.Model, model.GetProperty("id").GetString());
        Assert.Equal("ready", model.GetProperty("status").GetString());
        Assert.Equal(128, model.GetProperty("context_length").GetInt32());
        using var health = JsonDocument.Parse(await http.GetStringAsync($"{fixture.BaseUrl}/health", TestContext.Current.CancellationToken));
        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
        // The MoE view's data carries the deployment too.
        using var view = JsonDocument.Parse(await http.GetStringAsync($"{fixture.BaseUrl}/moe/api/state", TestContext.Current.CancellationToken));
        var shown = Assert.Single(view.RootElement.GetProperty("deployments").EnumerateArray());
        Assert.Equal(ServingFixture.Model, shown.GetProperty("model").GetString());
        Assert.Equal(1, shown.GetProperty("replicas").GetInt32());
    }

    [Fact]
    public async Task AClientThatGoesAwayFreesItsBatchSlot()
    {
        // No draining of an unread response: disposing it closes the connection, as a client that dies would.
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { Timeout = Patience };
        var before = await fixture.Load();
        var request = new HttpRequestMessage(HttpMethod.Post, $"{fixture.BaseUrl}/v1/completions")
        {
            Content = Body(new { model = ServingFixture.Model, prompt = "Once", max_tokens = 120, temperature = 1.0, seed = 1, stream = true }),
        };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken)))
            Assert.StartsWith("data: ", await reader.ReadLineAsync(TestContext.Current.CancellationToken));
        response.Dispose(); // the connection closes mid-stream

        var clock = Stopwatch.StartNew();
        while ((await fixture.Load()).Running > 0)
        {
            Assert.True(clock.Elapsed < Patience, "the abandoned request is still decoding");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        // The replica dropped the request when the client left, before its 120 tokens.
        var after = await fixture.Load();
        Assert.Equal(1, after.Cancelled - before.Cancelled);
        Assert.InRange(after.Tokens - before.Tokens, 1, 119);
    }

    /// <summary>
    /// Sixteen clients for a few seconds against a replica that takes 4 requests decoding and 4 waiting: every answer
    /// is 200 with exactly the completion of its own prompt and seed (nothing lost or mixed up) or 429 busy, and the
    /// replica never held more than its queue limit waiting.
    /// </summary>
    [Fact]
    public async Task UnderLoadEveryRequestGetsItsOwnCompletionOrBusyAndTheQueueBoundHolds()
    {
        const int clients = 16;
        var duration = TimeSpan.FromSeconds(6);
        var results = new ConcurrentBag<(string Prompt, long Seed, HttpStatusCode Status, string? Text)>();
        var before = await fixture.Load();
        using var http = new HttpClient { Timeout = Patience };
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            for (int i = 0; clock.Elapsed < duration; i++)
            {
                string prompt = $"Client {client} asks {i}:";
                long seed = client * 1000 + i;
                var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions",
                    Body(new { model = ServingFixture.Model, prompt, max_tokens = 8, temperature = 0.8, seed }), TestContext.Current.CancellationToken);
                string? text = null;
                if (response.StatusCode == HttpStatusCode.OK)
                    text = (await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("choices")[0].GetProperty("text").GetString();
                results.Add((prompt, seed, response.StatusCode, text));
                if (response.StatusCode == HttpStatusCode.TooManyRequests) await Task.Delay(20, TestContext.Current.CancellationToken);
            }
        }));
        var after = await fixture.Load();

        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{r.Prompt}: {r.Status}"));
        var served = results.Where(r => r.Status == HttpStatusCode.OK).ToList();
        int busy = results.Count(r => r.Status == HttpStatusCode.TooManyRequests);
        Assert.True(served.Count >= clients, $"only {served.Count} requests were served");
        Assert.True(busy > 0, "16 clients never filled a queue of 4 behind a batch of 4");
        Assert.Equal(busy, after.Refused - before.Refused);
        Assert.InRange(after.MostQueued, 1, ServingFixture.QueueLimit);
        foreach (var r in served)
            Assert.Equal(fixture.Alone(r.Prompt, new SamplingOptions { MaxTokens = 8, Temperature = 0.8, TopP = 1.0, Seed = r.Seed }), r.Text);
    }
}
