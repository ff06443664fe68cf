using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace OpenPurse.Hosting;

/// <summary>
/// The limits both servers put on a request, documented in docs/errors.md. Kestrel refuses what
/// breaks its own limits before the application runs, with an empty body; so its limits are set
/// well above the documented ones, and the documented ones are enforced here, where a refusal is
/// problem details with a code. Only a request beyond Kestrel's limits, or bytes that are not
/// HTTP at all, still get Kestrel's bare answer.
/// </summary>
internal static class RequestLimits
{
    /// <summary>The longest request target (path and query, as sent) a server reads.</summary>
    public const int TargetLengthMax = 4 * 1024;

    /// <summary>The most header bytes (names and values) a server reads.</summary>
    public const int HeadersLengthMax = 16 * 1024;

    /// <summary>The most header fields a server reads.</summary>
    public const int HeaderCountMax = 64;

    /// <summary>The body limit of an endpoint that does not name its own: bodies are not read there.</summary>
    public const long BodyLengthDefault = 4 * 1024;

    // Kestrel's own limits: a request line or headers between the documented limit and these get a
    // problem; beyond these Kestrel answers alone.
    private const int KestrelRequestLineMax = 64 * 1024;
    private const int KestrelHeadersLengthMax = 128 * 1024;
    private const int KestrelHeaderCountMax = 1024;

    /// <summary>Kestrel's limits above the documented ones, and the default body limit.</summary>
    public static void Configure(KestrelServerOptions kestrel)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxRequestLineSize = KestrelRequestLineMax;
        kestrel.Limits.MaxRequestHeadersTotalSize = KestrelHeadersLengthMax;
        kestrel.Limits.MaxRequestHeaderCount = KestrelHeaderCountMax;
        kestrel.Limits.MaxRequestBodySize = BodyLengthDefault;
        kestrel.Limits.Http2.MaxRequestHeaderFieldSize = KestrelHeadersLengthMax;
    }

    /// <summary>The endpoint reads a body of at most <paramref name="bytes"/> bytes; a larger one is answered 413 request.too_large.</summary>
    public static TBuilder WithBodyLimit<TBuilder>(this TBuilder endpoint, long bytes)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        return endpoint.WithMetadata(new BodyLimit(bytes));
    }

    /// <summary>
    /// After routing: a request that matched none of the server's routes is answered by routing's own
    /// endpoint (405 for another method) or 404, and runs no code of ours; authorization then applies
    /// to the routes only.
    /// </summary>
    public static IApplicationBuilder UseRoutesOnly(this IApplicationBuilder app) => app.Use((context, next) => context.GetEndpoint() switch
    {
        RouteEndpoint => next(context),
        { RequestDelegate: { } answer } => answer(context),
        _ => NotFound(context),
    });

    /// <summary>
    /// Refuses, as problem details, a request whose target or headers break the documented limits,
    /// or whose path holds a control character once decoded (nothing here names a resource so).
    /// </summary>
    public static IApplicationBuilder UseRequestLimits(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
        if (target.Length > TargetLengthMax)
        {
            await Problems.WriteAsync(context, StatusCodes.Status414UriTooLong, $"Request targets are at most {TargetLengthMax} bytes.").ConfigureAwait(false);
            return;
        }

        var headers = context.Request.Headers;
        if (headers.Count > HeaderCountMax || HeadersLength(headers) > HeadersLengthMax)
        {
            await Problems.WriteAsync(context, StatusCodes.Status431RequestHeaderFieldsTooLarge,
                $"Requests have at most {HeaderCountMax} header fields of at most {HeadersLengthMax} bytes together.").ConfigureAwait(false);
            return;
        }

        if (context.Request.Path.Value is { } path && path.AsSpan().ContainsAnyInRange('\0', '\u001f'))
        {
            await Problems.WriteAsync(context, StatusCodes.Status400BadRequest, "The path holds a control character.").ConfigureAwait(false);
            return;
        }

        await next(context).ConfigureAwait(false);
    });

    private static long HeadersLength(IHeaderDictionary headers)
    {
        long length = 0;
        foreach (var (name, values) in headers)
        {
            length += name.Length;
            foreach (var value in values)
            {
                length += value?.Length ?? 0;
            }
        }

        return length;
    }

    /// <summary>Endpoint metadata that routing applies to the request before the body is read.</summary>
    private sealed class BodyLimit(long bytes) : IRequestSizeLimitMetadata
    {
        public long? MaxRequestBodySize => bytes;
    }

    private static Task NotFound(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }
}
