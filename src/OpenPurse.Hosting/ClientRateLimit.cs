using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace OpenPurse.Hosting;

/// <summary>
/// How many requests one client address may make to the endpoints marked with
/// <see cref="RequireClientRateLimit"/>: a token bucket per address, burst deep, refilled with
/// perSecond tokens each second. A request finding the bucket empty is answered 429
/// <c>request.rate_limited</c> with Retry-After, and does nothing.
/// </summary>
internal static class ClientRateLimit
{
    /// <summary>Applies the client limit of <see cref="AddClientRateLimit"/> to the endpoint.</summary>
    public static TBuilder RequireClientRateLimit<TBuilder>(this TBuilder endpoint)
        where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(Marker.Instance);

    /// <summary>
    /// Adds the per-address limit as the global limiter, which the rate limiting middleware asks
    /// before an endpoint's own policy: a policy (the operator's admission control) still applies
    /// after it. A request rejected here is answered 429; a rejection by a policy is left to the
    /// <see cref="RateLimiterOptions.OnRejected"/> set before this call, if any.
    /// </summary>
    /// <param name="limits">The rate limiter's options.</param>
    /// <param name="perSecond">Requests per second one address may keep up.</param>
    /// <param name="burst">Requests one address may make at once after a pause.</param>
    public static void AddClientRateLimit(this RateLimiterOptions limits, int perSecond, int burst)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (perSecond < 1 || burst < 1)
        {
            throw new InvalidOperationException("A client rate limit allows at least one request per second and a burst of at least one.");
        }

        var policyRejected = limits.OnRejected;
        limits.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, IPAddress>(context =>
            context.GetEndpoint()?.Metadata.GetMetadata<Marker>() is null
                ? RateLimitPartition.GetNoLimiter(IPAddress.None)
                : RateLimitPartition.GetTokenBucketLimiter(ClientOf(context), _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = burst,
                    TokensPerPeriod = perSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                }));
        limits.OnRejected = async (rejected, cancellationToken) =>
        {
            if (rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) || policyRejected is null)
            {
                var seconds = Math.Max(1, (int)Math.Ceiling((retryAfter == default ? TimeSpan.FromSeconds(1) : retryAfter).TotalSeconds));
                rejected.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Problems.WriteAsync(rejected.HttpContext, StatusCodes.Status429TooManyRequests,
                    $"This client may make {burst} requests at once and {perSecond} a second; nothing was done.").ConfigureAwait(false);
                return;
            }

            await policyRejected(rejected, cancellationToken).ConfigureAwait(false);
        };
    }

    // The address the connection comes from; behind a reverse proxy, the proxy's (docs/operations.md).
    private static IPAddress ClientOf(HttpContext context) => context.Connection.RemoteIpAddress ?? IPAddress.None;

    private sealed class Marker
    {
        public static readonly Marker Instance = new();
    }
}
