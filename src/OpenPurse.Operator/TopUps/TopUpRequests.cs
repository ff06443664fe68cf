using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using OpenPurse.Hosting;
using OpenPurse.Operator.Credit;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.TopUps;

/// <summary>
/// A top-up's request (<c>POST /v1/topups</c>; docs/reliability.md, "Top-up"): the card and its
/// open business checked, the top-up recorded as authorizing and committed, the charge authorized
/// (idempotency key: the top-up id), and only when approved the CREDIT made for the card's session.
/// The card's answer is <see cref="TopUpCompletion"/>'s; a CREDIT whose answer never came is
/// <see cref="TopUpResolution"/>'s.
/// </summary>
internal sealed class TopUpRequests(
    Database database,
    ISecurityModule security,
    CardRecovery recovery,
    TopUpLimits limits,
    TimeProvider time,
    TopUpResolution resolution,
    TopUpEvents events,
    ICreditAuthorizer? authorizer = null)
{
    /// <summary>How many times a start decides again when a concurrent request changed the card first.</summary>
    private const int AttemptsMax = 4;

    /// <summary>The authorizer's key set, signed by the operator (<c>GET /v1/topups/authorizer-keys</c>).</summary>
    public async Task<Result<AuthorizerKeysResponse>> GetAuthorizerKeysAsync(CancellationToken cancellationToken)
    {
        if (authorizer is null)
        {
            return Unavailable();
        }

        JsonWebKeySet keys;
        try
        {
            keys = await authorizer.GetKeysAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or FormatException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            return new Refusal(ProblemCode.TopUpUnavailable, "The credit authorizer does not give its keys now.");
        }

        using var document = JsonDocument.Parse(keys.ToJson());
        var signed = SignedMessage.Sign(security.OperatorKey, new AuthorizerKeys(document.RootElement.Clone(), time.GetUtcNow()), MessageTypes.AuthorizerKeys);
        return new AuthorizerKeysResponse(signed);
    }

    /// <summary><c>POST /v1/topups</c>.</summary>
    public async Task<Result<TopUpResponse>> StartAsync(TopUpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (authorizer is null)
        {
            return Unavailable();
        }

        byte[] hostChallenge;
        byte[] greetingBytes;
        try
        {
            hostChallenge = Convert.FromBase64String(request.HostChallenge ?? "");
            greetingBytes = Convert.FromBase64String(request.CardGreeting ?? "");
        }
        catch (FormatException)
        {
            return new Refusal(ProblemCode.RequestMalformed, "The host challenge and the card greeting are base64.");
        }

        if (request.TopUpId == Guid.Empty || request.Amount == default || string.IsNullOrEmpty(request.CardData) || request.CardData.Length > 8 * 1024)
        {
            return new Refusal(ProblemCode.RequestMalformed, "A top-up has an id, an amount and the encrypted card data.");
        }

        if (hostChallenge.Length != Protocol.Channel.Scp03.ChallengeLength || !CardGreeting.TryParse(greetingBytes, out var greeting))
        {
            return new Refusal(ProblemCode.CardGreetingMalformed, "The card greeting is not an OpenPurse INITIALIZE UPDATE answer to an 8-byte host challenge.");
        }

        var digest = RequestDigest(request);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await TopUpRow.LoadAsync(connection, null, request.TopUpId).ConfigureAwait(false);
        if (row is not null)
        {
            if (row.RequestDigest != digest)
            {
                return new Refusal(ProblemCode.TopUpConflict, $"Top-up {request.TopUpId} was asked for with another request.");
            }

            if (row.State != TopUpState.Authorizing)
            {
                return Again(row);
            }

            // The wallet still asks: the top-up is not abandoned for another TopUpAuthorizingMax.
            if (!await StillAskedAsync(connection, row, cancellationToken).ConfigureAwait(false))
            {
                return await TopUpRow.LoadAsync(connection, null, request.TopUpId).ConfigureAwait(false) is { } changed
                    ? Again(changed)
                    : new Refusal(ProblemCode.TopUpNotFound, $"No top-up {request.TopUpId}.");
            }
        }
        else
        {
            var recorded = await RecordAsync(connection, request, greeting, hostChallenge, digest, cancellationToken).ConfigureAwait(false);
            if (recorded is not null)
            {
                return recorded;
            }
        }

        return await AuthorizeAsync(connection, request, greeting, hostChallenge, greetingBytes, cancellationToken).ConfigureAwait(false);
    }

    // Checks the card and what it left open, then records the top-up as authorizing, committed before
    // the authorizer is asked. Null when recorded (or recorded first by a concurrent same request).
    private async Task<Refusal?> RecordAsync(DbConnection opened, TopUpRequest request, CardGreeting greeting, byte[] hostChallenge, string digest, CancellationToken cancellationToken)
    {
        var amount = request.Amount;
        if (amount.MinorUnits <= 0)
        {
            return new Refusal(ProblemCode.RequestMalformed, "A top-up adds an amount above zero.");
        }

        if (amount.Currency != limits.PerTopUp.Currency || greeting.Status.BalanceOf(amount.Currency) is not { } balance)
        {
            return new Refusal(ProblemCode.TopUpLimitExceeded, $"Top-ups are in {limits.PerTopUp.Currency.Code}, the card's currency.");
        }

        if (amount.MinorUnits > limits.PerTopUp.MinorUnits)
        {
            return new Refusal(ProblemCode.TopUpLimitExceeded, $"A top-up adds at most {limits.PerTopUp}.");
        }

        var card = await opened.QuerySingleOrDefaultAsync<(string Status, long Counter)?>(
            "SELECT status, counter FROM cards WHERE card_id = @id", new { id = greeting.CardId.Digits }).ConfigureAwait(false);
        if (card is not var (status, counter))
        {
            return new Refusal(ProblemCode.CardUnknown, $"Card {greeting.CardId.Masked} is not registered.");
        }

        if (status != "active")
        {
            return new Refusal(ProblemCode.CardBlocked, $"Card {greeting.CardId.Masked} is blocked.");
        }

        if (greeting.Status.Counter < counter)
        {
            return new Refusal(ProblemCode.CardAuthenticationFailed, "The card reports an older counter than the operator has seen: this greeting is not the card's latest.");
        }

        using (var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out _))
        {
            if (session is null)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card's greeting does not verify.");
            }
        }

        for (var attempt = 1; ; attempt++)
        {
            List<Guid> settle = [];
            try
            {
                var refusal = await RecordOnceAsync(opened, request, greeting, balance, digest, settle, cancellationToken).ConfigureAwait(false);
                foreach (var id in settle)
                {
                    await resolution.SettleAsync(id, cancellationToken).ConfigureAwait(false);
                }

                return refusal;
            }
            catch (Exception e) when ((e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db))) && attempt < AttemptsMax)
            {
            }
            catch (Exception e) when (e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db)))
            {
                return new Refusal(ProblemCode.CardBusy, "Other requests for this card are changing it at the same moment; try again.");
            }
        }
    }

    private async Task<Refusal?> RecordOnceAsync(DbConnection opened, TopUpRequest request, CardGreeting greeting, Money balance, string digest, List<Guid> settle, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.LockCardSyncAsync(connection, transaction, greeting.CardId.Digits).ConfigureAwait(false);
        if (await TopUpRow.LoadAsync(connection, transaction, request.TopUpId).ConfigureAwait(false) is { } earlier)
        {
            // A concurrent same request recorded it first.
            return earlier.RequestDigest == digest ? null : new Refusal(ProblemCode.TopUpConflict, $"Top-up {request.TopUpId} was asked for with another request.");
        }

        // What the card left open is resolved first, as a purchase start does; what the greeting proves stays proved.
        var open = await ResolveOpenAsync(connection, transaction, greeting, now, settle).ConfigureAwait(false);
        if (open is not null)
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return open;
        }

        var amount = request.Amount;
        var balanceMax = limits.BalanceMaxMinor;
        if (checked(balance.MinorUnits + amount.MinorUnits) > balanceMax)
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new Refusal(ProblemCode.TopUpLimitExceeded,
                $"The card may hold at most {new Money(balanceMax, amount.Currency)}; it can take {new Money(Math.Max(0, balanceMax - balance.MinorUnits), amount.Currency)} more.");
        }

        var dayStart = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero);
        // Authorizing top-ups count too: two started at once cannot both pass the maximum.
        var today = await connection.ExecuteScalarAsync<long>(
            $"""
            SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM topups
            WHERE card_id = @cardId AND currency = @currency AND created_at >= @dayStart
              AND state {TopUpStates.In([.. TopUpStates.Counted, TopUpState.Authorizing])}
            """,
            new { cardId = greeting.CardId.Digits, currency = amount.Currency.Code, dayStart = StoredTime.Format(dayStart) }, transaction).ConfigureAwait(false);
        if (checked(today + amount.MinorUnits) > limits.Daily.MinorUnits)
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new Refusal(ProblemCode.TopUpLimitExceeded,
                $"A card is topped up by at most {limits.Daily} a day; {new Money(Math.Max(0, limits.Daily.MinorUnits - today), amount.Currency)} is left today.");
        }

        await connection.ExecuteAsync(
            """
            INSERT INTO topups (topup_id, card_id, amount_minor, currency, request_digest, state, created_at, updated_at)
            VALUES (@id, @cardId, @amount, @currency, @digest, @state, @now, @now)
            """,
            new
            {
                id = request.TopUpId.ToString(),
                cardId = greeting.CardId.Digits,
                amount = amount.MinorUnits,
                currency = amount.Currency.Code,
                digest,
                state = TopUpState.Authorizing.ToText(),
                now = StoredTime.Format(now),
            },
            transaction).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        events.Entered(request.TopUpId, TopUpState.Authorizing, amount, null);
        return null;
    }

    // What the card left open, resolved from the greeting in the caller's transaction; a top-up it
    // proved credited or never run is captured or voided once the transaction commits.
    private async Task<Refusal?> ResolveOpenAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now, List<Guid> settle)
    {
        var open = await recovery.ResolveLeftOpenAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        if (open.TopUp is (var topUpId, not TopUpState.Crediting))
        {
            settle.Add(topUpId);
        }

        return open.Busy;
    }

    // Asks the authorizer (the same key each time) and, when approved, makes the CREDIT in the card's session.
    private async Task<Result<TopUpResponse>> AuthorizeAsync(DbConnection connection, TopUpRequest request, CardGreeting greeting, byte[] hostChallenge, byte[] greetingBytes,
        CancellationToken cancellationToken)
    {
        var outcome = await authorizer!.AuthorizeAsync(new AuthorizeRequest(request.Amount, request.TopUpId.ToString(), request.CardData), request.TopUpId.ToString(), cancellationToken).ConfigureAwait(false);
        switch (outcome.Result)
        {
            case CreditResult.Unavailable or CreditResult.TimedOut:
                events.AuthorizerUnavailable(request.TopUpId, outcome.Result);
                return new Refusal(ProblemCode.AuthorizerUnavailable, "The credit authorizer did not answer; send the same request again (the same top-up id).");
            case CreditResult.Refused:
                var problem = outcome.Problem is { } known && known.Code.StartsWith("card_data.", StringComparison.Ordinal) ? known : ProblemCode.TopUpDeclined;
                await DeclineAsync(connection, request.TopUpId, problem.Code, null, cancellationToken).ConfigureAwait(false);
                return new Refusal(problem, outcome.Problem == problem ? outcome.Detail ?? problem.Title : "The credit authorizer refused the charge.");
        }

        var authorization = outcome.Authorization!;
        if (authorization.Status != AuthorizationStatus.Approved)
        {
            var refusal = DeclineRefusal(authorization.DeclineCode);
            await DeclineAsync(connection, request.TopUpId, authorization.DeclineCode ?? "declined", authorization.LastFour, cancellationToken).ConfigureAwait(false);
            return refusal;
        }

        for (var attempt = 1; ; attempt++)
        {
            using var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out _);
            if (session is null)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card's greeting does not verify.");
            }

            try
            {
                var credit = await CreditOnceAsync(connection, session, request, authorization, greeting, hostChallenge, greetingBytes, cancellationToken).ConfigureAwait(false);
                if (credit.Refusal?.Problem == ProblemCode.TopUpAbandoned)
                {
                    // Abandoned while this request awaited the authorizer: no CREDIT, and its approval is voided.
                    await resolution.VoidLateApprovalAsync(request.TopUpId, authorization.Id, cancellationToken).ConfigureAwait(false);
                }

                return credit;
            }
            catch (Exception e) when ((e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db))) && attempt < AttemptsMax)
            {
            }
            catch (Exception e) when (e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db)))
            {
                return new Refusal(ProblemCode.CardBusy, "Other requests for this card are changing it at the same moment; try again.");
            }
        }
    }

    private async Task<Result<TopUpResponse>> CreditOnceAsync(DbConnection opened, CardHostSession session, TopUpRequest request, CreditAuthorization authorization,
        CardGreeting greeting, byte[] hostChallenge, byte[] greetingBytes, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.LockCardSyncAsync(connection, transaction, greeting.CardId.Digits).ConfigureAwait(false);
        var row = await TopUpRow.LoadAsync(connection, transaction, request.TopUpId).ConfigureAwait(false);
        if (row is null || row.State != TopUpState.Authorizing)
        {
            // A concurrent same request made the CREDIT first: its answer is this one's.
            return row is null ? new Refusal(ProblemCode.TopUpNotFound, $"No top-up {request.TopUpId}.") : Again(row);
        }

        var counter = await connection.ExecuteScalarAsync<long>("SELECT counter FROM cards WHERE card_id = @id", new { id = row.CardId }, transaction).ConfigureAwait(false);
        if (greeting.Status.Counter < counter)
        {
            // The card moved on since this greeting: a CREDIT for it could never run.
            return new Refusal(ProblemCode.CardAuthenticationFailed, "The card reports an older counter than the operator has seen: this greeting is not the card's latest.");
        }

        var response = new TopUpResponse(row.Id, TopUpState.Crediting.ToText(), row.Amount, authorization.LastFour,
            row.CreditOrder.Make(security, session, greeting));
        if (!await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.Approve, row.Movement, now,
                "authorization_id = @authorizationId, last_four = @lastFour, credit_greeting = @greetingBytes, credit_challenge = @hostChallenge, response = @response, " + TopUpRow.Touch,
                parameters: new
                {
                    authorizationId = authorization.Id.ToString(),
                    lastFour = authorization.LastFour,
                    greetingBytes,
                    hostChallenge,
                    response = JsonSerializer.Serialize(response, ProtocolJson.Options),
                    now = StoredTime.Format(now),
                }).ConfigureAwait(false))
        {
            throw new ConcurrentChangeException();
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        events.Entered(row.Id, TopUpState.Crediting, row.Amount, authorization.LastFour);
        return response;
    }

    // Marks that the wallet asked again for a top-up still authorizing; false when it is not any more.
    private async Task<bool> StillAskedAsync(DbConnection connection, TopUpRow row, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        var touched = await write.Connection.ExecuteAsync(
            $"UPDATE topups SET {TopUpRow.Touch} WHERE topup_id = @id AND state {TopUpStates.In(TopUpState.Authorizing)}",
            new { id = row.TopUpId, now = StoredTime.Format(now) }, write.Inner).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return touched == 1;
    }

    private async Task DeclineAsync(DbConnection connection, Guid topUpId, string code, string? lastFour, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        if (await TopUpRow.LoadAsync(write.Connection, write.Inner, topUpId).ConfigureAwait(false) is { } row
            && await TopUpStates.Machine.RunAsync(write.Connection, write.Inner, TopUpStates.Decline, row.Movement, now, "decline_code = @code, last_four = @lastFour, " + TopUpRow.Touch,
                parameters: new { code, lastFour, now = StoredTime.Format(now) }).ConfigureAwait(false))
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            events.Entered(topUpId, TopUpState.Declined, row.Amount, lastFour);
        }
    }

    // The answer to a request seen before, by the top-up's state.
    private static Result<TopUpResponse> Again(TopUpRow row) => row.State switch
    {
        TopUpState.Declined => DeclineRefusal(row.DeclineCode),
        TopUpState.Crediting or TopUpState.Credited or TopUpState.Captured when row.Response is { } response =>
            JsonSerializer.Deserialize<TopUpResponse>(response, ProtocolJson.Options)!,
        // Voiding or voided without a CREDIT ever made: abandoned while authorizing (TopUpStates.Abandon).
        TopUpState.Voiding or TopUpState.Voided when row.Response is null =>
            new Refusal(ProblemCode.TopUpAbandoned, $"Top-up {row.Id} waited too long for its authorization and was abandoned: nothing is charged or added. Start a new top-up."),
        _ => new Refusal(ProblemCode.TopUpConflict, $"Top-up {row.Id} is {row.State.ToText()}: the card never took its credit."),
    };

    // The issuer's decline (or the authorizer's refusal, stored by its code) as the wallet is told it.
    private static Refusal DeclineRefusal(string? code) => code switch
    {
        "incorrect_pin" => new Refusal(ProblemCode.TopUpPinIncorrect, "The credit card's PIN is incorrect."),
        "limit_exceeded" => new Refusal(ProblemCode.TopUpCardLimit, "The charge is above what the credit card may still be charged."),
        _ when ProblemCode.Find(code) is { } problem && problem.Code.StartsWith("card_data.", StringComparison.Ordinal) => new Refusal(problem, problem.Title),
        _ => new Refusal(ProblemCode.TopUpDeclined, "The credit card's issuer declined the charge."),
    };

    /// <summary>The refusal of every top-up call when no credit authorizer is configured.</summary>
    public static Refusal Unavailable() => new(ProblemCode.TopUpUnavailable, "No credit authorizer is configured: top-ups are not available.");

    // What makes two requests the same: every field, the encrypted card data only by its digest.
    private static string RequestDigest(TopUpRequest request) =>
        Convert.ToHexString(SHA256.HashData(ProtocolJson.ToUtf8(request)));
}
