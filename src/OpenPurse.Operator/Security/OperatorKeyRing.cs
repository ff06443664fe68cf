using System.Buffers.Binary;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Security;

/// <summary>The states of an operator signing key in the registry (table operator_keys).</summary>
internal static class OperatorKeyStates
{
    /// <summary>Published in the JWKS so that verifiers learn it; not signing yet.</summary>
    public const string Next = "next";

    /// <summary>Signs everything the operator signs; exactly one key is active.</summary>
    public const string Active = "active";

    /// <summary>Was active before the last activation; still published, so that what it signed still verifies.</summary>
    public const string Previous = "previous";

    /// <summary>No longer published: verifiers refuse what it signed once they fetched the JWKS again.</summary>
    public const string Retired = "retired";
}

/// <summary>An operator signing key as <c>key list</c> and the admin API show it (never its private half).</summary>
/// <param name="Kid">Its key id, the RFC 7638 thumbprint.</param>
/// <param name="State">next, active, previous or retired (<see cref="OperatorKeyStates"/>).</param>
/// <param name="CreatedAt">When it was entered in the registry.</param>
/// <param name="ActivatedAt">When it last became the active key; null if never.</param>
/// <param name="RetiredAt">When it was retired; null while it is not.</param>
/// <param name="InVault">Whether this node's vault holds its private half.</param>
internal sealed record OperatorKeyView(string Kid, string State, string CreatedAt, string? ActivatedAt, string? RetiredAt, bool InVault);

/// <summary>What <c>key list</c> and <c>GET /v1/admin/operator-keys</c> show: the signing keys, and the card master key versions (never values).</summary>
/// <param name="OperatorKeys">The signing keys, oldest first.</param>
/// <param name="MasterKeyVersions">The card master key versions the vault holds, two hex digits each, oldest first; new cards get the last.</param>
internal sealed record KeyList(IReadOnlyList<OperatorKeyView> OperatorKeys, IReadOnlyList<string> MasterKeyVersions);

/// <summary>
/// The operator's signing keys across nodes: the private keys in the vault (one label each), their
/// states in the registry (operator_keys), where every node sees them. A node signs with the
/// registry's active key, read again at most every <see cref="OperatorOptions.OperatorKeyRefresh"/>
/// without a restart; it publishes the next, active and previous keys (docs/operations.md,
/// "Rotating keys"). Everything else is the vault's.
/// </summary>
internal sealed partial class OperatorKeyRing : ISecurityModule, IDisposable
{
    private readonly ISecurityModule _vault;
    private readonly Database _database;
    private readonly long _refreshAfterMs;
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);
    private ISigningKey _active;
    private long _readAt;
    private int _refreshing;
    private int _disposed;
    private ILogger _logger = NullLogger.Instance;

    private OperatorKeyRing(ISecurityModule vault, Database database, TimeSpan refreshAfter)
    {
        _vault = vault;
        _database = database;
        _refreshAfterMs = (long)refreshAfter.TotalMilliseconds;
        _active = vault.OperatorKey;
    }

    /// <summary>The active key as this node last read it; reading it again in the background when that was long enough ago.</summary>
    public ISigningKey OperatorKey
    {
        get
        {
            if (Environment.TickCount64 - Interlocked.Read(ref _readAt) >= _refreshAfterMs && Interlocked.Exchange(ref _refreshing, 1) == 0)
            {
                _ = Task.Run(RefreshInBackgroundAsync);
            }

            return Volatile.Read(ref _active);
        }
    }

    public IReadOnlyList<byte> MasterKeyVersions => _vault.MasterKeyVersions;

    /// <summary>The vault the ring signs through (for tests that read a token's attributes back).</summary>
    internal ISecurityModule Vault => _vault;

    /// <summary>
    /// The ring over a vault: on a registry without operator keys (a deployment from before key
    /// rotation, or a new one), the vault's key is entered as the active one first.
    /// </summary>
    public static async Task<OperatorKeyRing> OpenAsync(ISecurityModule vault, Database database, TimeSpan refreshAfter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(database);
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            // Nodes starting together on one PostgreSQL: one enters its key, the others see it.
            await database.Dialect.LockAsync(write.Connection, write.Inner, LockKey).ConfigureAwait(false);
            var now = StoredTime.Format(DateTimeOffset.UtcNow);
            await write.Connection.ExecuteAsync(
                """
                INSERT INTO operator_keys (kid, jwk, state, created_at, activated_at)
                SELECT @kid, @jwk, 'active', @now, @now WHERE NOT EXISTS (SELECT 1 FROM operator_keys)
                """,
                new { kid = vault.OperatorKey.KeyId, jwk = JsonSerializer.Serialize(vault.OperatorKey.PublicKey), now },
                write.Inner).ConfigureAwait(false);
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        var ring = new OperatorKeyRing(vault, database, refreshAfter);
        await ring.RefreshAsync(cancellationToken).ConfigureAwait(false);
        return ring;
    }

    /// <summary>Where the ring reports a key it cannot sign with (set once the host's logging is built).</summary>
    public void UseLogger(ILogger logger) => _logger = logger ?? NullLogger.Instance;

    /// <summary>The keys verifiers need: next, active and previous, from the registry as it is now.</summary>
    public async Task<JsonWebKeySet> PublishedAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var jwks = await connection.QueryAsync<string>(
            "SELECT jwk FROM operator_keys WHERE state IN ('next', 'active', 'previous') ORDER BY created_at, kid").ConfigureAwait(false);
        var keys = jwks.Select(j => JsonSerializer.Deserialize<JsonWebKey>(j)!).ToList();
        // What this node signs with is always published, even in the instant before the registry says so.
        var active = Volatile.Read(ref _active);
        if (!keys.Any(k => k.Kid == active.KeyId))
        {
            keys.Add(active.PublicKey);
        }

        return new JsonWebKeySet(keys);
    }

    /// <summary>The signing keys and the master key versions.</summary>
    public async Task<KeyList> ListAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<KeyRow> rows;
        await using (var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            rows = await ReadAsync(connection, null).ConfigureAwait(false);
        }

        return new KeyList(
            [.. rows.Select(r => new OperatorKeyView(r.Kid, r.State, r.CreatedAt, r.ActivatedAt, r.RetiredAt, r.State != OperatorKeyStates.Retired && _vault.FindSigningKey(r.Kid) is not null))],
            [.. _vault.MasterKeyVersions.Select(v => v.ToString("X2", System.Globalization.CultureInfo.InvariantCulture))]);
    }

    /// <summary><c>key rotate</c>: a new key pair in the vault, entered as <c>next</c>: published, not signing.</summary>
    public async Task<OperatorKeyView> RotateAsync(CancellationToken cancellationToken)
    {
        var key = _vault.CreateSigningKey();
        var now = StoredTime.Format(DateTimeOffset.UtcNow);
        await _database.WriteAsync(
            "INSERT INTO operator_keys (kid, jwk, state, created_at) VALUES (@kid, @jwk, 'next', @now)",
            new { kid = key.KeyId, jwk = JsonSerializer.Serialize(key.PublicKey), now }, cancellationToken).ConfigureAwait(false);
        return new OperatorKeyView(key.KeyId, OperatorKeyStates.Next, now, null, null, InVault: true);
    }

    /// <summary>
    /// Makes a next (or previous) key the active one; the active one becomes previous and stays
    /// published. This node signs with it at once, the others within their refresh interval.
    /// </summary>
    public async Task<Result<OperatorKeyView>> ActivateAsync(string kid, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(kid);
        ISigningKey? key;
        await using (var write = await _database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            await _database.Dialect.LockAsync(write.Connection, write.Inner, LockKey).ConfigureAwait(false);
            var row = (await ReadAsync(write.Connection, write.Inner).ConfigureAwait(false)).FirstOrDefault(r => r.Kid == kid);
            if (row is null)
            {
                return new Refusal(ProblemCode.OperatorKeyNotFound, $"No operator key '{kid}'.");
            }

            if (row.State == OperatorKeyStates.Retired)
            {
                return new Refusal(ProblemCode.OperatorKeyWrongState, $"Operator key '{kid}' is retired; a retired key is never used again. Rotate to a new one.");
            }

            // The vault must hold it before any node is told to sign with it.
            key = _vault.FindSigningKey(kid);
            if (key is null)
            {
                return new Refusal(ProblemCode.OperatorKeyNotInVault, $"This node's key vault does not hold operator key '{kid}'; the nodes must share the vault (or token).");
            }

            if (row.State != OperatorKeyStates.Active)
            {
                var now = StoredTime.Format(DateTimeOffset.UtcNow);
                await write.Connection.ExecuteAsync("UPDATE operator_keys SET state = 'previous' WHERE state = 'active'", transaction: write.Inner).ConfigureAwait(false);
                await write.Connection.ExecuteAsync(
                    "UPDATE operator_keys SET state = 'active', activated_at = @now WHERE kid = @kid", new { kid, now }, write.Inner).ConfigureAwait(false);
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        Volatile.Write(ref _active, key);
        Interlocked.Exchange(ref _readAt, Environment.TickCount64);
        return await ViewAsync(kid, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Retires a next or previous key: no longer published. The active key is never retired (activate its successor first).</summary>
    public async Task<Result<OperatorKeyView>> RetireAsync(string kid, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(kid);
        await using (var write = await _database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            await _database.Dialect.LockAsync(write.Connection, write.Inner, LockKey).ConfigureAwait(false);
            var row = (await ReadAsync(write.Connection, write.Inner).ConfigureAwait(false)).FirstOrDefault(r => r.Kid == kid);
            if (row is null)
            {
                return new Refusal(ProblemCode.OperatorKeyNotFound, $"No operator key '{kid}'.");
            }

            if (row.State == OperatorKeyStates.Active)
            {
                return new Refusal(ProblemCode.OperatorKeyWrongState, $"Operator key '{kid}' is the active key; activate its successor first.");
            }

            if (row.State != OperatorKeyStates.Retired)
            {
                await write.Connection.ExecuteAsync(
                    "UPDATE operator_keys SET state = 'retired', retired_at = @now WHERE kid = @kid",
                    new { kid, now = StoredTime.Format(DateTimeOffset.UtcNow) }, write.Inner).ConfigureAwait(false);
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        return await ViewAsync(kid, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the active key from the registry now; a key the vault lacks is reported and not used.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        string? activeKid;
        await using (var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            activeKid = await connection.QuerySingleOrDefaultAsync<string>("SELECT kid FROM operator_keys WHERE state = 'active'").ConfigureAwait(false);
        }

        if (activeKid is not null && activeKid != Volatile.Read(ref _active).KeyId)
        {
            if (_vault.FindSigningKey(activeKid) is { } key)
            {
                Volatile.Write(ref _active, key);
                LogSigningWith(_logger, activeKid);
            }
            else
            {
                bool first;
                lock (_warned)
                {
                    first = _warned.Add(activeKid);
                }

                if (first)
                {
                    // It should never happen (all nodes share the vault or token); the node keeps signing with what it has.
                    LogActiveKeyNotInVault(_logger, activeKid, Volatile.Read(ref _active).KeyId);
                }
            }
        }

        Interlocked.Exchange(ref _readAt, Environment.TickCount64);
    }

    public ISigningKey? FindSigningKey(string kid) => _vault.FindSigningKey(kid);

    public ISigningKey CreateSigningKey() => _vault.CreateSigningKey();

    public byte CreateMasterKey() => _vault.CreateMasterKey();

    public CardHostSession? OpenCardSession(CardId cardId, ReadOnlySpan<byte> hostChallenge, CardGreeting greeting, out CardAuthenticationError error) =>
        _vault.OpenCardSession(cardId, hostChallenge, greeting, out error);

    public IssuedCardKeys IssueCardKeys(CardId cardId) => _vault.IssueCardKeys(cardId);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            (_vault as IDisposable)?.Dispose();
        }
    }

    // "openpurse-operator-keys": the one lock every change of operator_keys takes.
    private static long LockKey { get; } = BinaryPrimitives.ReadInt64BigEndian(SHA256.HashData(Encoding.UTF8.GetBytes("openpurse-operator-keys")));

    private static async Task<IReadOnlyList<KeyRow>> ReadAsync(DbConnection connection, DbTransaction? transaction) =>
        [.. await connection.QueryAsync<KeyRow>(
            "SELECT kid AS Kid, state AS State, created_at AS CreatedAt, activated_at AS ActivatedAt, retired_at AS RetiredAt FROM operator_keys ORDER BY created_at, kid",
            transaction: transaction).ConfigureAwait(false)];

    private async Task<OperatorKeyView> ViewAsync(string kid, CancellationToken cancellationToken) =>
        (await ListAsync(cancellationToken).ConfigureAwait(false)).OperatorKeys.Single(k => k.Kid == kid);

    /// <summary>Reads the active key again now, as the lazy refresh of <see cref="OperatorKey"/> does: a failure is logged and the key in hand kept.</summary>
    internal Task RefreshQuietlyAsync() => RefreshInBackgroundAsync();

    private async Task RefreshInBackgroundAsync()
    {
        try
        {
            await RefreshAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or TimeoutException or KeyVaultException or ObjectDisposedException)
        {
            // The registry is unreachable for a moment: sign on with the key in hand, try again next time.
            LogRefreshFailed(_logger, e.GetType().Name, e.Message);
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Signing with operator key {Kid}, the registry's active key")]
    private static partial void LogSigningWith(ILogger logger, string kid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The registry's active operator key {Kid} is not in this node's key vault; signing with {Current} until it is")]
    private static partial void LogActiveKeyNotInVault(ILogger logger, string kid, string current);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the operator keys' states: {ErrorType}: {ErrorMessage}")]
    private static partial void LogRefreshFailed(ILogger logger, string errorType, string errorMessage);

    private sealed record KeyRow(string Kid, string State, string CreatedAt, string? ActivatedAt, string? RetiredAt);
}

/// <summary>
/// Reads the registry's active signing key every <see cref="OperatorOptions.OperatorKeyRefresh"/> on a
/// serving node, so that "every node signs with a key activated within that time" holds for a node
/// that signed nothing meanwhile (the ring's own refresh runs only when a signature is asked for).
/// </summary>
internal sealed class OperatorKeyRefresher(OperatorKeyRing ring, TimeSpan every) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(every > TimeSpan.Zero ? every : TimeSpan.FromSeconds(5));
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            await ring.RefreshQuietlyAsync().ConfigureAwait(false);
        }
    }
}
