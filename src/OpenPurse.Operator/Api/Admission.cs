using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

namespace OpenPurse.Operator.Api;

/// <summary>
/// Backpressure in front of the registry: a node works on at most RequestsInFlightMax settlement
/// and card requests at once and queues the rest, oldest first. Without it, a burst larger than
/// the connection pool has every request wait for a connection at each of its steps, each step
/// behind the whole burst, until they time out together; with it, an admitted request runs
/// straight through and a queued one waits once. A full queue answers 503 operator.busy with
/// Retry-After at once. Health checks, key sets and the admin API are not queued.
/// </summary>
internal static class Admission
{
    public const string Policy = "registry";

    public static void Configure(RateLimiterOptions limits, OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(options);
        limits.AddConcurrencyLimiter(Policy, limiter =>
        {
            limiter.PermitLimit = options.RequestsInFlightMax;
            limiter.QueueLimit = options.RequestQueueMax;
            limiter.QueueProcessingOrder = QueueProcessingOrder.OldestFirst;
        });
        limits.OnRejected = (rejected, _) =>
            new ValueTask(RegistryBusy.AnswerAsync(rejected.HttpContext, "The operator's queue is full; try again shortly. Nothing was changed."));
    }
}
