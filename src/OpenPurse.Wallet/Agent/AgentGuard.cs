using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Agent;

/// <summary>
/// Endpoint metadata: the endpoint belongs to the agent's API (<c>/v1/…</c>), which only the allowed
/// origins' pages may call, with the agent's header and CORS. Endpoints without it are the agent's
/// own pages, which no other origin may read or frame. The guard reads this, never the path.
/// </summary>
internal sealed class AgentApi
{
    public static AgentApi Instance { get; } = new();

    private AgentApi()
    {
    }
}

/// <summary>
/// The agent's one guard, on every request before its handler (docs/security.md, "The wallet agent"):
/// the Host must be the agent's own loopback name and port (DNS rebinding); API requests need an
/// allowed <c>Origin</c> (else 403 without CORS headers) and the <c>X-OpenPurse-Agent</c> header, which no
/// "simple" cross-site request carries, so that every call is preflighted; preflights from allowed origins
/// are answered here (with Private Network Access when asked). Pages get headers that keep them out of
/// frames and other origins' reach.
/// </summary>
internal static class AgentGuard
{
    public const string HeaderName = "X-OpenPurse-Agent";

    /// <summary>The content security policy of every page: no script at all, nothing from elsewhere, no framing.</summary>
    public const string PagePolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    private const string AllowedMethods = "GET, POST";
    private const string AllowedHeaders = "Content-Type, " + HeaderName;

    /// <summary>The key under which the request's allowed origin is kept for the handler.</summary>
    private const string OriginItem = "openpurse.agent.origin";

    /// <summary>The request's allowed origin (set by the guard on API requests).</summary>
    public static string AllowedOrigin(HttpContext context) => (string)context.Items[OriginItem]!;

    /// <summary>
    /// After routing (so that the endpoint's metadata is known), before any endpoint runs: the Host
    /// first (a rebound name reaches nothing, not even a 404), then for the API the origin, the header
    /// and CORS, and for pages their headers.
    /// </summary>
    public static Task GuardAsync(HttpContext context, AgentOrigins origins, int port, RequestDelegate next)
    {
        if (!IsOwnHost(context.Request.Host, port))
        {
            return RefuseAsync(context, ProblemCode.AgentHostRefused, "The agent answers requests to 127.0.0.1, localhost or [::1] at its own port only.");
        }

        var endpoint = context.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<AgentApi>() is null)
        {
            PageHeaders(context.Response.Headers);
            return next(context);
        }

        var request = context.Request;
        var origin = origins.Match(request.Headers.Origin);
        if (origin is null)
        {
            return RefuseAsync(context, ProblemCode.AgentOriginRefused, "Only pages of the origins the agent was told to allow may use it.");
        }

        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = origin;
        headers.Vary = "Origin";
        headers.CacheControl = "no-store";
        if (HttpMethods.IsOptions(request.Method))
        {
            headers.AccessControlAllowMethods = AllowedMethods;
            headers.AccessControlAllowHeaders = AllowedHeaders;
            headers.AccessControlMaxAge = "600";
            if (string.Equals(request.Headers["Access-Control-Request-Private-Network"], "true", StringComparison.OrdinalIgnoreCase))
            {
                headers["Access-Control-Allow-Private-Network"] = "true";
            }

            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return Task.CompletedTask;
        }

        if (!string.Equals(request.Headers[HeaderName], "1", StringComparison.Ordinal))
        {
            return RefuseAsync(context, ProblemCode.AgentHeaderRequired, $"Requests to the agent's API carry the header {HeaderName}: 1.");
        }

        context.Items[OriginItem] = origin;
        return next(context);
    }

    /// <summary>The agent's own origin for the request (its Host already checked), as a form POST's Origin names it.</summary>
    public static string OwnOrigin(HttpContext context) => $"{context.Request.Scheme}://{context.Request.Host.Value}".ToLowerInvariant();

    /// <summary>
    /// Whether a form POST comes from the agent's own page: its Origin is the agent's. A page sent with
    /// <c>Referrer-Policy: no-referrer</c> makes browsers send <c>Origin: null</c> on its own form posts;
    /// then <c>Sec-Fetch-Site: same-origin</c>, which only the browser sets, says the same.
    /// </summary>
    public static bool FromOwnPage(HttpContext context)
    {
        var headers = context.Request.Headers;
        StringValues origin = headers.Origin;
        if (origin.Count != 1)
        {
            return false;
        }

        if (string.Equals(origin[0], OwnOrigin(context), StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return string.Equals(origin[0], "null", StringComparison.Ordinal)
            && string.Equals(headers["Sec-Fetch-Site"], "same-origin", StringComparison.Ordinal);
    }

    public static void PageHeaders(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = PagePolicy;
        headers.XFrameOptions = "DENY";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XContentTypeOptions = "nosniff";
        headers.CacheControl = "no-store";
    }

    private static bool IsOwnHost(HostString host, int port)
    {
        if (!host.HasValue || host.Port != port)
        {
            return false;
        }

        return host.Host.ToLowerInvariant() is "127.0.0.1" or "localhost" or "[::1]";
    }

    private static Task RefuseAsync(HttpContext context, ProblemCode code, string detail) => Problems.Refuse(code, detail).ExecuteAsync(context);
}
