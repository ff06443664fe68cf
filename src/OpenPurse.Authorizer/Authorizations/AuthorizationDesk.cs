using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Authorizations;

/// <summary>An authorization answered: a new one, or the one the same request made before.</summary>
/// <param name="Authorization">The authorization.</param>
/// <param name="Replayed">The idempotency key and request were seen before: this is that answer again.</param>
/// <param name="Hold">The time-out test card: answer only after longer than the caller waits.</param>
internal sealed record AuthorizeAnswer(CreditAuthorization Authorization, bool Replayed, bool Hold);

/// <summary>
/// Decides authorizations and records captures and voids. One request at a time changes anything
/// (a test-mode authorizer sees few), so that an idempotency key, a capture or a void is decided
/// once however many copies of a request arrive together.
/// </summary>
internal sealed partial class AuthorizationDesk(
    AuthorizationDatabase database, CardKeys keys, AuthorizerOptions options, TimeProvider time, ILogger<AuthorizationDesk> logger) : IDisposable
{
    /// <summary>The longest idempotency key and the longest reference or void reason.</summary>
    public const int IdempotencyKeyLengthMax = 255;
    public const int ReferenceLengthMax = 64;

    private readonly SemaphoreSlim _turn = new(1, 1);

    public async Task<Result<AuthorizeAnswer>> AuthorizeAsync(string? idempotencyKey, AuthorizeRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!IsToken(idempotencyKey, IdempotencyKeyLengthMax))
        {
            return new Refusal(ProblemCode.IdempotencyKeyRequired, $"Send an Idempotency-Key header of 1 to {IdempotencyKeyLengthMax} visible ASCII characters; the same key again answers the same authorization.");
        }

        if (!IsToken(request.Reference, ReferenceLengthMax))
        {
            return new Refusal(ProblemCode.RequestMalformed, $"The reference must be 1 to {ReferenceLengthMax} visible ASCII characters.");
        }

        if (!request.Amount.IsPositive || request.Amount.Currency.Equals(Currency.Points))
        {
            return new Refusal(ProblemCode.AuthorizationAmountInvalid, "The amount must be above zero and in money, not points.");
        }

        var hash = Fingerprint(request);
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await database.FindByKeyAsync(idempotencyKey, cancellationToken).ConfigureAwait(false) is { } before)
            {
                return CryptographicOperations.FixedTimeEquals(before.RequestHash, hash)
                    ? new AuthorizeAnswer(before.Authorization, Replayed: true, Hold: false)
                    : new Refusal(ProblemCode.IdempotencyConflict, "This Idempotency-Key answered another request; a new request needs a new key.");
            }

            var failedBefore = await database.FailedAttemptAsync(idempotencyKey, cancellationToken).ConfigureAwait(false);
            if (failedBefore is not null && !CryptographicOperations.FixedTimeEquals(failedBefore, hash))
            {
                return new Refusal(ProblemCode.IdempotencyConflict, "This Idempotency-Key was used for another request; a new request needs a new key.");
            }

            var read = ReadCard(request.CardData);
            if (read.Refusal is { } unreadable)
            {
                return unreadable;
            }

            var card = read.Value!;
            var now = time.GetUtcNow();
            if (now >= TestCards.EndOf(card.Expiry))
            {
                return new Refusal(ProblemCode.CardExpired, "The card's expiry date has passed.");
            }

            var behaviour = TestCards.BehaviourOf(card.Pan);
            if (behaviour == TestCardBehaviour.FailOnce && failedBefore is null)
            {
                await database.RecordFailedAttemptAsync(idempotencyKey, hash, now, cancellationToken).ConfigureAwait(false);
                LogFailedOnce(logger, request.Reference);
                return new Refusal(ProblemCode.AuthorizerUnavailable, "The authorizer could not reach the card's issuer; send the same request again with the same Idempotency-Key.");
            }

            var decline = TestCards.DeclineCodeFor(behaviour, card.Pin, request.Amount);
            var authorization = new CreditAuthorization(
                Guid.NewGuid(),
                request.Reference,
                decline is null ? AuthorizationStatus.Approved : AuthorizationStatus.Declined,
                decline,
                request.Amount,
                keys.TokenOf(card.Pan),
                card.Pan[^4..],
                now,
                decline is null ? now + options.AuthorizationLifetime : null,
                Captured: null,
                CapturedAt: null,
                VoidedAt: null);
            await database.InsertAsync(new StoredAuthorization(authorization, idempotencyKey, hash, VoidReason: null), cancellationToken).ConfigureAwait(false);
            LogDecided(logger, authorization.Id, authorization.Reference, authorization.Status, decline ?? "-", authorization.Amount, authorization.LastFour);
            // As stored (times to the millisecond), so that the answer to a retry is the same answer.
            var stored = (await database.FindAsync(authorization.Id, cancellationToken).ConfigureAwait(false))!.Authorization;
            return new AuthorizeAnswer(stored, Replayed: false, Hold: behaviour == TestCardBehaviour.TimeOut);
        }
        finally
        {
            _turn.Release();
        }
    }

    public async Task<Result<CreditAuthorization>> FindAsync(Guid id, CancellationToken cancellationToken) =>
        await database.FindAsync(id, cancellationToken).ConfigureAwait(false) is { } stored ? stored.Authorization : NotFound(id);

    /// <summary>
    /// The authorization made under <paramref name="idempotencyKey"/>: how a caller whose answer was
    /// lost, and who no longer has the request to send again, learns whether it holds anything.
    /// </summary>
    public async Task<Result<CreditAuthorization>> FindByKeyAsync(string? idempotencyKey, CancellationToken cancellationToken)
    {
        if (!IsToken(idempotencyKey, IdempotencyKeyLengthMax))
        {
            return new Refusal(ProblemCode.RequestMalformed, $"Ask with idempotencyKey=, 1 to {IdempotencyKeyLengthMax} visible ASCII characters.");
        }

        return await database.FindByKeyAsync(idempotencyKey, cancellationToken).ConfigureAwait(false) is { } stored
            ? stored.Authorization
            : new Refusal(ProblemCode.AuthorizationNotFound, "No authorization was made under this Idempotency-Key.");
    }

    public async Task<Result<CreditAuthorization>> CaptureAsync(Guid id, CaptureRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.Amount.IsPositive)
        {
            return new Refusal(ProblemCode.AuthorizationAmountInvalid, "A capture takes an amount above zero.");
        }

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await database.FindAsync(id, cancellationToken).ConfigureAwait(false) is not { Authorization: var authorization })
            {
                return NotFound(id);
            }

            if (authorization.Status != AuthorizationStatus.Approved)
            {
                return new Refusal(ProblemCode.AuthorizationDeclined, "The authorization was declined; nothing is held to capture.");
            }

            if (authorization.VoidedAt is not null)
            {
                return new Refusal(ProblemCode.AuthorizationVoided, "The authorization was voided; it cannot be captured.");
            }

            if (authorization.Captured is { } captured)
            {
                // Capturing again is the same capture, answered again; another amount is not.
                return captured == request.Amount
                    ? authorization
                    : new Refusal(ProblemCode.AuthorizationCaptured, $"The authorization was captured before, for {captured}.");
            }

            if (!request.Amount.Currency.Equals(authorization.Amount.Currency) || request.Amount.MinorUnits > authorization.Amount.MinorUnits)
            {
                return new Refusal(ProblemCode.CaptureExceedsAuthorization, $"At most {authorization.Amount} may be captured.");
            }

            var now = time.GetUtcNow();
            if (now >= authorization.ExpiresAt)
            {
                return new Refusal(ProblemCode.AuthorizationExpired, "The authorization expired; the amount is no longer held.");
            }

            await database.CaptureAsync(id, request.Amount, now, cancellationToken).ConfigureAwait(false);
            LogCaptured(logger, id, request.Amount);
            return (await database.FindAsync(id, cancellationToken).ConfigureAwait(false))!.Authorization;
        }
        finally
        {
            _turn.Release();
        }
    }

    public async Task<Result<CreditAuthorization>> VoidAsync(Guid id, VoidRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!IsToken(request.Reason, ReferenceLengthMax))
        {
            return new Refusal(ProblemCode.RequestMalformed, $"The reason must be 1 to {ReferenceLengthMax} visible ASCII characters.");
        }

        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await database.FindAsync(id, cancellationToken).ConfigureAwait(false) is not { Authorization: var authorization })
            {
                return NotFound(id);
            }

            if (authorization.Status != AuthorizationStatus.Approved)
            {
                return new Refusal(ProblemCode.AuthorizationDeclined, "The authorization was declined; nothing is held to void.");
            }

            if (authorization.CapturedAt is not null)
            {
                return new Refusal(ProblemCode.AuthorizationCaptured, "The authorization was captured; it cannot be voided.");
            }

            if (authorization.VoidedAt is not null)
            {
                return authorization;
            }

            await database.VoidAsync(id, request.Reason, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            LogVoided(logger, id, request.Reason);
            return (await database.FindAsync(id, cancellationToken).ConfigureAwait(false))!.Authorization;
        }
        finally
        {
            _turn.Release();
        }
    }

    public void Dispose() => _turn.Dispose();

    /// <summary>1 to <paramref name="lengthMax"/> visible ASCII characters: safe in a header, a log line and a database.</summary>
    internal static bool IsToken([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] string? text, int lengthMax) =>
        text is { Length: > 0 } && text.Length <= lengthMax && text.All(c => c is > ' ' and < (char)0x7F);

    private static Refusal NotFound(Guid id) => new(ProblemCode.AuthorizationNotFound, $"There is no authorization {id}.");

    /// <summary>
    /// What makes two requests the same request: amount, reference and the card data as sent
    /// (a retry sends the same JWE; a new encryption of the same card is a new request).
    /// </summary>
    private static byte[] Fingerprint(AuthorizeRequest request) =>
        SHA256.HashData(Encoding.UTF8.GetBytes($"{request.Amount.MinorUnits}\n{request.Amount.Currency.Code}\n{request.Reference}\n{request.CardData}"));

    /// <summary>The card data, decrypted and checked; the refusals say what was wrong, never what it held.</summary>
    private Result<CardData> ReadCard(string cardData)
    {
        byte[] plaintext;
        try
        {
            plaintext = keys.Decrypt(cardData);
        }
        catch (JweException e)
        {
            return new Refusal(ProblemCode.CardDataInvalid, "The card data is not a JWE for the authorizer's key: " + e.Message);
        }

        CardData? card;
        try
        {
            card = JsonSerializer.Deserialize<CardData>(plaintext, ProtocolJson.Options);
        }
        catch (JsonException)
        {
            card = null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }

        if (card is null || !TestCards.IsNumber(card.Pan) || !TestCards.IsPin(card.Pin) || TestCards.EndOf(card.Expiry) is null)
        {
            return new Refusal(ProblemCode.CardDataInvalid, "The card data must be {\"pan\": 12 to 19 digits, \"expiry\": \"MM/YY\", \"pin\": 4 to 12 digits}.");
        }

        return TestCards.PassesLuhn(card.Pan)
            ? card
            : new Refusal(ProblemCode.CardNumberInvalid, "The card number fails its check digit (Luhn).");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorization {Id} for {Reference}: {Status} ({DeclineCode}), {Amount}, card ending {LastFour}")]
    private static partial void LogDecided(ILogger logger, Guid id, string reference, AuthorizationStatus status, string declineCode, Money amount, string lastFour);

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorization {Id} captured: {Amount}")]
    private static partial void LogCaptured(ILogger logger, Guid id, Money amount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorization {Id} voided: {Reason}")]
    private static partial void LogVoided(ILogger logger, Guid id, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorization for {Reference}: the fail-once test card's first attempt, answered 503")]
    private static partial void LogFailedOnce(ILogger logger, string reference);
}
