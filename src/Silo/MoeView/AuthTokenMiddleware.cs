using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Orleans.MoE.Silo.Hosting;

namespace Orleans.MoE.Silo.MoeView;

/// <summary>
/// Optional protection of /dashboard, /moe and the completions API (/v1) by a shared token (the Orleans Dashboard
/// has no auth of its own; OpenAI clients send their key as a Bearer header):
/// "?token=…" once (it sets a cookie so the page's own requests pass), or an "Authorization: Bearer …" header.
/// </summary>
public sealed class AuthTokenMiddleware(RequestDelegate next, MoeSiloOptions options)
{
    const string Cookie = "moe_token";

    public async Task InvokeAsync(HttpContext context)
    {
        if (string.IsNullOrEmpty(options.AuthToken)
            || !(context.Request.Path.StartsWithSegments("/dashboard") || context.Request.Path.StartsWithSegments("/moe") || context.Request.Path.StartsWithSegments("/v1")))
        {
            await next(context);
            return;
        }
        string? offered = context.Request.Query["token"].FirstOrDefault();
        bool fromQuery = offered is not null;
        offered ??= context.Request.Headers.Authorization.FirstOrDefault() is { } h && h.StartsWith("Bearer ", StringComparison.Ordinal) ? h[7..] : null;
        offered ??= context.Request.Cookies[Cookie];
        if (offered is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(offered), Encoding.UTF8.GetBytes(options.AuthToken)))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            await context.Response.WriteAsync("unauthorized: pass ?token=… or an 'Authorization: Bearer' header");
            return;
        }
        if (fromQuery) context.Response.Cookies.Append(Cookie, offered, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict });
        await next(context);
    }
}
