using System.Net;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Generation;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>
/// A deployment whose one replica spans four silos (tensor slicing 2 × expert parallelism 2, coordinated all-to-all,
/// shared memory between the silos): completions over HTTP are the one-process model's.
/// </summary>
public class SlicedServingTests(SlicedServingFixture fixture) : IClassFixture<SlicedServingFixture>
{
    [Fact]
    public async Task AReplicaOfFourSilosGivesTheOneProcessCompletions()
    {
        var state = await fixture.Grains.GetGrain<IDeploymentGrain>(ServingFixture.Model).GetState();
        Assert.Single(state.Replicas); // one replica: its rank 0 takes the requests
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var requests = Enumerable.Range(0, 6).Select(i => (Prompt: $"Request {i} says", Options: new SamplingOptions { MaxTokens = 10, Temperature = i % 2 == 0 ? 0 : 0.8, TopP = 1.0, Seed = 40 + i })).ToArray();
        // Together: they share the batch (continuous batching across the four ranks).
        var answers = await Task.WhenAll(requests.Select(async r =>
        {
            var body = new StringContent(JsonSerializer.Serialize(new { model = ServingFixture.Model, prompt = r.Prompt, max_tokens = 10, temperature = r.Options.Temperature, seed = r.Options.Seed }), Encoding.UTF8, "application/json");
            var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions", body, TestContext.Current.CancellationToken);
            string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
        }));
        for (int i = 0; i < requests.Length; i++)
            Assert.Equal(fixture.Alone(requests[i].Prompt, requests[i].Options), answers[i]);
    }
}
