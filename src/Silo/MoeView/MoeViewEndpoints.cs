using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Orleans.MoE.Silo.MoeView;

/// <summary>The MoE view: a page (jobs, loss curves, expert-load heatmaps, silo health) and the JSON it polls.</summary>
public static class MoeViewEndpoints
{
    static readonly Lazy<string> Page = new(() =>
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Orleans.MoE.Silo.MoeView.moe.html")
            ?? throw new InvalidOperationException("the MoE view page is not embedded in the silo assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    public static IEndpointRouteBuilder MapMoeView(this IEndpointRouteBuilder endpoints, string path)
    {
        endpoints.MapGet(path, () => Results.Content(Page.Value, "text/html; charset=utf-8"));
        endpoints.MapGet(path + "/api/state", async (IGrainFactory grains) =>
            Results.Json(await MoeViewState.Gather(grains), new JsonSerializerOptions { DictionaryKeyPolicy = null }));
        return endpoints;
    }
}
