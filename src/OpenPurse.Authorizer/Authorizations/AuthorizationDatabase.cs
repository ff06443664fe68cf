using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Authorizer.Authorizations;

/// <summary>An authorization as stored, with the request that made it (its idempotency key and fingerprint).</summary>
internal sealed record StoredAuthorization(CreditAuthorization Authorization, string IdempotencyKey, byte[] RequestHash, string? VoidReason);

/// <summary>
/// The authorizations in SQLite (<c>authorizer.db</c>, 0600 in a 0700 directory): WAL and
/// <c>synchronous=FULL</c>, so that an answer given (an approval, a capture, a void) survives a
/// crash and a retry after a restart finds it. A card is kept only as its token and last four
/// digits; its number, expiry and PIN are never written.
/// </summary>
internal sealed class AuthorizationDatabase
{
    public const string FileName = "authorizer.db";

    private const int SchemaVersion = 1;

    private const string Columns =
        "id AS Id, idempotency_key AS IdempotencyKey, request_hash AS RequestHash, reference AS Reference, status AS Status, "
        + "decline_code AS DeclineCode, amount_minor AS AmountMinor, currency AS Currency, card_token AS CardToken, last_four AS LastFour, "
        + "created_at AS CreatedAt, expires_at AS ExpiresAt, captured_minor AS CapturedMinor, captured_at AS CapturedAt, "
        + "voided_at AS VoidedAt, void_reason AS VoidReason FROM authorizations";

    private readonly SqliteFile _file;

    public AuthorizationDatabase(string dataDirectory) => _file = new SqliteFile(dataDirectory, FileName);

    /// <summary>Makes the tables on first start.</summary>
    /// <exception cref="InvalidOperationException">The database is from a newer version.</exception>
    public void Initialize()
    {
        using var connection = _file.OpenForSchema(SchemaVersion, out var version);

        if (version == SchemaVersion)
        {
            return;
        }

        using var transaction = connection.BeginTransaction();
        connection.Execute(
            """
            CREATE TABLE authorizations (
                id TEXT PRIMARY KEY,
                idempotency_key TEXT NOT NULL UNIQUE,
                request_hash BLOB NOT NULL,
                reference TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('approved', 'declined')),
                decline_code TEXT,
                amount_minor INTEGER NOT NULL,
                currency TEXT NOT NULL,
                card_token TEXT NOT NULL,
                last_four TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expires_at TEXT,
                captured_minor INTEGER,
                captured_at TEXT,
                voided_at TEXT,
                void_reason TEXT,
                CHECK (captured_at IS NULL OR voided_at IS NULL)
            );
            -- The fail-once test card's first attempts: the retry with the same key approves, after a restart too.
            CREATE TABLE failed_attempts (
                idempotency_key TEXT PRIMARY KEY,
                request_hash BLOB NOT NULL,
                failed_at TEXT NOT NULL
            );
            """,
            transaction: transaction);
        connection.Execute(string.Create(CultureInfo.InvariantCulture, $"PRAGMA user_version = {SchemaVersion};"), transaction: transaction);
        transaction.Commit();
    }

    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT 1;", cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    public async Task<StoredAuthorization?> FindAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} WHERE id = @id;", new { id = id.ToString("D") }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return row?.ToStored();
    }

    public async Task<StoredAuthorization?> FindByKeyAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            $"SELECT {Columns} WHERE idempotency_key = @idempotencyKey;", new { idempotencyKey }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return row?.ToStored();
    }

    public async Task InsertAsync(StoredAuthorization stored, CancellationToken cancellationToken)
    {
        var a = stored.Authorization;
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO authorizations (id, idempotency_key, request_hash, reference, status, decline_code, amount_minor, currency,
                card_token, last_four, created_at, expires_at)
            VALUES (@id, @idempotencyKey, @requestHash, @reference, @status, @declineCode, @amountMinor, @currency,
                @cardToken, @lastFour, @createdAt, @expiresAt);
            """,
            new
            {
                id = a.Id.ToString("D"),
                idempotencyKey = stored.IdempotencyKey,
                requestHash = stored.RequestHash,
                reference = a.Reference,
                status = a.Status == AuthorizationStatus.Approved ? "approved" : "declined",
                declineCode = a.DeclineCode,
                amountMinor = a.Amount.MinorUnits,
                currency = a.Amount.Currency.Code,
                cardToken = a.CardToken,
                lastFour = a.LastFour,
                createdAt = StoredTime.Format(a.CreatedAt),
                expiresAt = a.ExpiresAt is { } expires ? StoredTime.Format(expires) : null,
            },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    public async Task CaptureAsync(Guid id, Money amount, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorizations SET captured_minor = @minor, captured_at = @at WHERE id = @id AND captured_at IS NULL AND voided_at IS NULL;",
            new { id = id.ToString("D"), minor = amount.MinorUnits, at = StoredTime.Format(at) },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    public async Task VoidAsync(Guid id, string reason, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE authorizations SET voided_at = @at, void_reason = @reason WHERE id = @id AND captured_at IS NULL AND voided_at IS NULL;",
            new { id = id.ToString("D"), reason, at = StoredTime.Format(at) },
            cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The request hash of the key's failed first attempt, or null when there was none.</summary>
    public async Task<byte[]?> FailedAttemptAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<byte[]?>(new CommandDefinition(
            "SELECT request_hash FROM failed_attempts WHERE idempotency_key = @idempotencyKey;", new { idempotencyKey }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    public async Task RecordFailedAttemptAsync(string idempotencyKey, byte[] requestHash, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT OR IGNORE INTO failed_attempts (idempotency_key, request_hash, failed_at) VALUES (@idempotencyKey, @requestHash, @at);",
            new { idempotencyKey, requestHash, at = StoredTime.Format(at) }, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _file.OpenAsync(cancellationToken);

    private sealed record Row
    {
        public required string Id { get; init; }

        public required string IdempotencyKey { get; init; }

        public required byte[] RequestHash { get; init; }

        public required string Reference { get; init; }

        public required string Status { get; init; }

        public string? DeclineCode { get; init; }

        public long AmountMinor { get; init; }

        public required string Currency { get; init; }

        public required string CardToken { get; init; }

        public required string LastFour { get; init; }

        public required string CreatedAt { get; init; }

        public string? ExpiresAt { get; init; }

        public long? CapturedMinor { get; init; }

        public string? CapturedAt { get; init; }

        public string? VoidedAt { get; init; }

        public string? VoidReason { get; init; }

        public StoredAuthorization ToStored()
        {
            var currency = Protocol.Currency.FromCode(Currency);
            var authorization = new CreditAuthorization(
                Guid.Parse(Id, CultureInfo.InvariantCulture),
                Reference,
                Status == "approved" ? AuthorizationStatus.Approved : AuthorizationStatus.Declined,
                DeclineCode,
                new Money(AmountMinor, currency),
                CardToken,
                LastFour,
                StoredTime.Parse(CreatedAt),
                ExpiresAt is null ? null : StoredTime.Parse(ExpiresAt),
                CapturedMinor is { } captured ? new Money(captured, currency) : null,
                CapturedAt is null ? null : StoredTime.Parse(CapturedAt),
                VoidedAt is null ? null : StoredTime.Parse(VoidedAt));
            return new StoredAuthorization(authorization, IdempotencyKey, RequestHash, VoidReason);
        }
    }
}
