using OpenPurse.Protocol.Jose;

namespace OpenPurse.Store.Operator;

/// <summary>
/// The operator's published keys, which check SIG3 on completion notices: fetched on first need,
/// cached, and fetched again when a notice names a key id not yet seen (the operator rotated its
/// key), at most once per <see cref="RefetchIntervalMin"/> so that forged key ids cannot make the
/// store hammer the operator. A key set older than <see cref="MaxAge"/> is fetched again before
/// use, so that a key the operator retired (no longer published) stops verifying here within that
/// time, even when its kid is known (docs/operations.md, "Rotating keys").
/// </summary>
internal sealed partial class OperatorKeys(OperatorClient client, TimeProvider time, ILogger<OperatorKeys> log) : IDisposable
{
    // As short as the operator's nodes take to switch to a key just activated (5 s), so that a notice
    // under it is taken at once; at one fetch per 5 s a forged kid costs the operator nothing.
    public static readonly TimeSpan RefetchIntervalMin = TimeSpan.FromSeconds(5);

    /// <summary>How long a fetched key set is used before it is fetched again.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromMinutes(10);

    private readonly SemaphoreSlim _fetchGate = new(1, 1);
    private JsonWebKeySet? _keys;
    private DateTimeOffset _fetchedAt;

    /// <summary>
    /// The key set to check a message signed under <paramref name="kid"/> with; null when the
    /// operator's keys are needed and could not be fetched. A set without the kid is returned when
    /// it was fetched recently: the message is then refused as signed by an unknown key.
    /// </summary>
    public async Task<JsonWebKeySet?> GetForAsync(string? kid, CancellationToken cancellationToken)
    {
        var keys = Volatile.Read(ref _keys);
        if (keys is not null && (kid is null || keys.Find(kid) is not null) && !IsOld())
        {
            return keys;
        }

        await _fetchGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another request may have fetched while this one waited.
            keys = _keys;
            if (keys is not null && (kid is null || keys.Find(kid) is not null) && !IsOld())
            {
                return keys;
            }

            var now = time.GetUtcNow();
            if (keys is not null && now - _fetchedAt < RefetchIntervalMin)
            {
                return keys;
            }

            var stale = keys;

            try
            {
                keys = await client.FetchKeysAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or FormatException
                                          || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                LogFetchFailed(log, e.GetType().Name, e.Message);
                // A set that is only old still serves while the operator is unreachable: its keys were the operator's.
                return stale is not null && (kid is null || stale.Find(kid) is not null) ? stale : null;
            }

            Volatile.Write(ref _keys, keys);
            _fetchedAt = now;
            LogFetched(log, keys.Keys.Count, kid);
            return keys;
        }
        finally
        {
            _fetchGate.Release();
        }
    }

    public void Dispose() => _fetchGate.Dispose();

    private bool IsOld() => time.GetUtcNow() - _fetchedAt >= MaxAge;

    [LoggerMessage(Level = LogLevel.Information, Message = "Fetched the operator's key set: {KeyCount} keys (needed kid {Kid})")]
    private static partial void LogFetched(ILogger logger, int keyCount, string? kid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not fetch the operator's key set: {ErrorType}: {ErrorMessage}")]
    private static partial void LogFetchFailed(ILogger logger, string errorType, string errorMessage);
}
