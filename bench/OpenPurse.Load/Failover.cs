using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using OpenPurse.Testing;

namespace OpenPurse.Load;

/// <summary>A fault of the HA cluster's leader in the middle of the measured phase.</summary>
/// <param name="Kind">kill (its machine dies) or cut (its network is cut off).</param>
/// <param name="At">How long into the measured phase.</param>
internal sealed record FailoverPlan(string Kind, TimeSpan At)
{
    public const string KillKind = "kill";
    public const string CutKind = "cut";
}

/// <summary>What a failover in the middle of the load cost.</summary>
/// <param name="Kind">kill or cut.</param>
/// <param name="OldLeader">The member that led when the fault came.</param>
/// <param name="NewLeader">The member that leads after it; null when none did in time.</param>
/// <param name="AtSeconds">When the fault came, in seconds into the measured phase.</param>
/// <param name="LeaderSeconds">Seconds from the fault to the new leader (Patroni reports it primary and it left recovery).</param>
/// <param name="FirstPurchaseSeconds">Seconds from the fault to the first completed purchase among those started after it; null when none completed.</param>
/// <param name="RejoinSeconds">Seconds from the fault to the old member streaming again as a standby (restarted after a kill, healed after a cut); null when it did not in time.</param>
/// <param name="DuringErrors">Operations refused or failed from the fault to that first completion, by error code.</param>
/// <param name="RunErrors">Every operation that failed in the run (warm-up and measured phase), by error code.</param>
/// <param name="Probe">
/// The operator's answers to a read of the registry (a store's key set, of a store that is none)
/// sent every 100 ms from the fault to the first completion: "status code" with ", Retry-After n"
/// when there was one, and how many.
/// </param>
internal sealed record FailoverSummary(
    string Kind,
    string OldLeader,
    string? NewLeader,
    double AtSeconds,
    double? LeaderSeconds,
    double? FirstPurchaseSeconds,
    double? RejoinSeconds,
    IReadOnlyDictionary<string, long> DuringErrors,
    IReadOnlyDictionary<string, long> RunErrors,
    IReadOnlyDictionary<string, long> Probe);

/// <summary>
/// When each operation ended, beside the moment of the fault: what the failover report is made of.
/// The wallets tell it every end; it keeps only what came after the fault.
/// </summary>
internal sealed class FailoverClock
{
    private readonly ConcurrentQueue<(long Ended, string Code)> _failures = new();
    private long _fault;
    private long _firstPurchase = long.MaxValue;

    /// <summary>The fault's timestamp (<see cref="Stopwatch"/>), or 0 before it.</summary>
    public long Fault => Interlocked.Read(ref _fault);

    /// <summary>The end of the first purchase started after the fault, or null while none completed.</summary>
    public long? FirstPurchase => Interlocked.Read(ref _firstPurchase) is var first && first != long.MaxValue ? first : null;

    public void MarkFault() => Interlocked.Exchange(ref _fault, Stopwatch.GetTimestamp());

    /// <summary>A purchase completed: the first of those started after the fault is the failover's end.</summary>
    public void PurchaseCompleted(long started, long ended)
    {
        var fault = Fault;
        if (fault == 0 || started <= fault)
        {
            return;
        }

        long first;
        while (ended < (first = Interlocked.Read(ref _firstPurchase)) && Interlocked.CompareExchange(ref _firstPurchase, ended, first) != first)
        {
        }
    }

    public void Failed(string code, long ended)
    {
        if (Fault != 0)
        {
            _failures.Enqueue((ended, code));
        }
    }

    /// <summary>The failures from the fault to the first completion after it (or to now), by code.</summary>
    public Dictionary<string, long> FailuresDuring()
    {
        var end = FirstPurchase ?? long.MaxValue;
        return _failures.Where(f => f.Ended <= end).GroupBy(f => f.Code, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => (long)g.Count(), StringComparer.Ordinal);
    }
}

/// <summary>
/// Brings the fault at its moment and watches the cluster through it: the time to a new leader,
/// the operator's answers meanwhile, and the old member back as a standby (in the background; the
/// run's end waits for it with a deadline).
/// </summary>
internal sealed class FailoverWatch(PatroniCluster cluster, FailoverPlan plan, Uri operatorUrl, FailoverClock clock)
{
    private static readonly TimeSpan s_leaderTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_rejoinTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan s_probeInterval = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<string, long> _probe = new(StringComparer.Ordinal);
    private string? _old;
    private string? _new;
    private double? _leaderSeconds;
    private double? _rejoinSeconds;
    private Task _rejoin = Task.CompletedTask;
    private Task _probing = Task.CompletedTask;
    private Exception? _rejoinFailure;

    /// <summary>Waits for the plan's moment (from <paramref name="measuredFrom"/>), brings the fault and waits for the new leader.</summary>
    public async Task RunAsync(long measuredFrom, CancellationToken cancellationToken)
    {
        var wait = plan.At - Stopwatch.GetElapsedTime(measuredFrom);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, cancellationToken);
        }

        var old = await cluster.LeaderAsync(cancellationToken);
        _old = old;
        if (plan.Kind == FailoverPlan.KillKind)
        {
            cluster.Kill(old);
        }
        else
        {
            cluster.Cut(old);
        }

        // The fault is done when the member is dead (its postmaster gone) or unreachable: until
        // then it still commits, and a purchase started meanwhile is not one after the fault.
        clock.MarkFault();

        _probing = ProbeAsync(cancellationToken);
        _new = await cluster.WaitForNewLeaderAsync(old, s_leaderTimeout, cancellationToken);
        _leaderSeconds = Seconds(Stopwatch.GetElapsedTime(clock.Fault));
        _rejoin = RejoinAsync(old, cancellationToken);
    }

    /// <summary>Waits for the old member's rejoining (it has its own deadline) and for the probe, then the summary.</summary>
    public async Task<FailoverSummary> FinishAsync(Dictionary<string, long> runErrors, TimeSpan measuredAt)
    {
        await _rejoin;
        await _probing;
        var fault = clock.Fault;
        return new FailoverSummary(
            plan.Kind,
            _old ?? "none",
            _new,
            Seconds(measuredAt),
            _leaderSeconds,
            clock.FirstPurchase is { } first ? Seconds(Stopwatch.GetElapsedTime(fault, first)) : null,
            _rejoinSeconds,
            clock.FailuresDuring(),
            runErrors,
            _probe.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal));
    }

    /// <summary>Why the old member did not come back, or null.</summary>
    public Exception? RejoinFailure => _rejoinFailure;

    private async Task RejoinAsync(string old, CancellationToken cancellationToken)
    {
        try
        {
            if (plan.Kind == FailoverPlan.KillKind)
            {
                cluster.Restart(old);
            }
            else
            {
                cluster.Heal(old);
            }

            await cluster.WaitForReplicaAsync(old, s_rejoinTimeout, cancellationToken);
            _rejoinSeconds = Seconds(Stopwatch.GetElapsedTime(clock.Fault));
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException or InvalidOperationException)
        {
            _rejoinFailure = e;
        }
    }

    // A read that needs the registry on every request: a store that is none is not cached, so
    // each answer is the registry's (404 store.not_found) or the node's word that it is gone (503).
    private async Task ProbeAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = operatorUrl, Timeout = TimeSpan.FromSeconds(15) };
        var deadline = Stopwatch.GetTimestamp() + (long)(s_leaderTimeout.TotalSeconds * 2 * Stopwatch.Frequency);
        while (clock.FirstPurchase is null && Stopwatch.GetTimestamp() < deadline && !cancellationToken.IsCancellationRequested)
        {
            string answer;
            try
            {
                using var response = await http.GetAsync($"v1/stores/probe-{Guid.NewGuid():N}/jwks", cancellationToken);
                var code = await ProblemCodeAsync(response, cancellationToken);
                answer = string.Create(CultureInfo.InvariantCulture, $"{(int)response.StatusCode} {code ?? "(no problem code)"}")
                    + (response.Headers.RetryAfter?.Delta is { } after ? string.Create(CultureInfo.InvariantCulture, $", Retry-After {after.TotalSeconds:F0}") : "");
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                answer = e.GetType().Name;
            }

            _probe.AddOrUpdate(answer, 1, (_, n) => n + 1);
            try
            {
                await Task.Delay(s_probeInterval, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private static async Task<string?> ProblemCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
            return body.ValueKind == JsonValueKind.Object && body.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String ? code.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            return null; // not problem details (a balancer's own page)
        }
    }

    private static double Seconds(TimeSpan time) => Math.Round(time.TotalSeconds, 2);
}
