using System.Net;
using System.Text;
using System.Text.Json;
using Orleans.MoE.Grains.Contracts;
using Orleans.MoE.Kernels.Generation;

namespace Orleans.MoE.ControlPlane.Tests;

/// <summary>A deployment of two replicas on two silos: requests spread over both, and go to the other when one is gone.</summary>
public class ServingFailoverTests(TwoReplicaServingFixture fixture) : IClassFixture<TwoReplicaServingFixture>
{
    async Task<(HttpStatusCode Status, string? Text, string? Replica)> Complete(HttpClient http, string prompt)
    {
        var body = new StringContent(JsonSerializer.Serialize(new { model = ServingFixture.Model, prompt, max_tokens = 12, temperature = 0 }), Encoding.UTF8, "application/json");
        var response = await http.PostAsync($"{fixture.BaseUrl}/v1/completions", body, TestContext.Current.CancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) return (response.StatusCode, null, null);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        return (response.StatusCode, json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString(), response.Headers.GetValues("X-Moe-Replica").Single());
    }

    [Fact]
    public async Task RequestsSpreadOverTheReplicasAndGoToTheOtherWhenOneIsGone()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var together = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Complete(http, $"Spread {i}:")));
        Assert.All(together, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(2, together.Select(r => r.Replica).Distinct().Count());

        // Replica 1's session goes away (as when its silo is lost); the routers still list it for a moment.
        var state = await fixture.Grains.GetGrain<IDeploymentGrain>(ServingFixture.Model).GetState();
        await fixture.Grains.GetGrain<IServingReplicaGrain>(state.Replicas[1]).Unload();
        var options = new SamplingOptions { MaxTokens = 12, Temperature = 0 };
        for (int i = 0; i < 6; i++)
        {
            var (status, text, replica) = await Complete(http, $"After {i}:");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("serving-silo-0", replica);
            Assert.Equal(fixture.Alone($"After {i}:", options), text);
        }
    }
}
