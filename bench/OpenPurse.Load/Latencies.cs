using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace OpenPurse.Load;

/// <summary>Latency samples by name, kept whole (a run holds at most some hundred thousand), and their percentiles.</summary>
internal sealed class Latencies
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<double>> _samples = new(StringComparer.Ordinal);

    public void Add(string name, TimeSpan elapsed) =>
        _samples.GetOrAdd(name, _ => new ConcurrentQueue<double>()).Enqueue(elapsed.TotalMilliseconds);

    public LatencySummary Summary(string name) => Summarize(name, _samples.TryGetValue(name, out var samples) ? [.. samples] : []);

    public IReadOnlyList<LatencySummary> Summaries(Func<string, bool> include) =>
        [.. _samples.Keys.Where(include).Order(StringComparer.Ordinal).Select(Summary)];

    /// <summary>Nearest-rank percentiles: each is a latency that was measured.</summary>
    private static LatencySummary Summarize(string name, double[] samples)
    {
        if (samples.Length == 0)
        {
            return new LatencySummary(name, 0, 0, 0, 0, 0);
        }

        Array.Sort(samples);
        double Rank(double p) => samples[Math.Clamp((int)Math.Ceiling(p * samples.Length) - 1, 0, samples.Length - 1)];
        return new LatencySummary(name, samples.Length, Round(Rank(0.50)), Round(Rank(0.90)), Round(Rank(0.99)), Round(samples[^1]), Round(Rank(0.95)));
    }

    private static double Round(double milliseconds) => Math.Round(milliseconds, 2);
}

/// <summary>
/// Times every HTTP call one wallet makes to one party, by party, method and route (ids replaced
/// by their names), and counts the wallet's settlement as in flight at the operator from sending
/// round trip 1 until the answer to round trip 2.
/// </summary>
internal sealed partial class TimingHandler(string party, HttpMessageHandler inner, Latencies latencies, InFlight inFlight, Func<bool> measuring) : DelegatingHandler(inner)
{
    public const string Operator = "operator";

    public const string Store = "store";

    /// <summary>The operator's round trip 1.</summary>
    private const string StartRoute = "operator POST /v1/settlements";

    /// <summary>The operator's round trip 2.</summary>
    private const string CompletionRoute = "operator POST /v1/settlements/{id}/completion";

    private bool _settling;

    /// <summary>The purchase ended (completed or not): its settlement is no longer in flight.</summary>
    public void PurchaseEnded() => Settling(false);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var name = $"{party} {request.Method} {Route(request.RequestUri!.AbsolutePath)}";
        if (name == StartRoute)
        {
            Settling(true);
        }

        var started = Stopwatch.GetTimestamp();
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        // The answer is read whole before it counts: what the wallet waits for.
        await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        if (measuring())
        {
            latencies.Add(name, Stopwatch.GetElapsedTime(started));
        }

        if (name == CompletionRoute)
        {
            Settling(false);
        }

        return response;
    }

    private void Settling(bool settling)
    {
        if (settling != _settling)
        {
            _settling = settling;
            inFlight.Add(settling ? 1 : -1);
        }
    }

    private static string Route(string path) => Id().Replace(OrderNo().Replace(path, "/orders/{no}"), "/{id}");

    [GeneratedRegex("/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")]
    private static partial Regex Id();

    [GeneratedRegex("/orders/[^/]+")]
    private static partial Regex OrderNo();
}

/// <summary>How many settlements are in flight at the operator right now.</summary>
internal sealed class InFlight
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Add(int delta) => Interlocked.Add(ref _count, delta);
}
