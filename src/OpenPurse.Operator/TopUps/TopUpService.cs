using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Credit;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.TopUps;

/// <summary>The top-up maxima (OperatorOptions), parsed once.</summary>
/// <param name="PerTopUp">The most one top-up may add.</param>
/// <param name="Daily">The most one card may be topped up by in a UTC calendar day.</param>
/// <param name="BalanceMaxMinor">The e-purse card's maximum balance, in minor units of the maxima's currency.</param>
internal sealed record TopUpLimits(Money PerTopUp, Money Daily, long BalanceMaxMinor)
{
    /// <exception cref="InvalidOperationException">A maximum is not an amount above zero, or the two are in different currencies.</exception>
    public static TopUpLimits From(OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Money.TryParse(options.TopUpMax, out var perTopUp) || !Money.TryParse(options.DailyTopUpMax, out var daily)
            || perTopUp.MinorUnits <= 0 || daily.MinorUnits <= 0 || perTopUp.Currency != daily.Currency)
        {
            throw new InvalidOperationException("TopUpMax and DailyTopUpMax are amounts above zero in one currency, e.g. \"500.00 EUR\".");
        }

        return new TopUpLimits(perTopUp, daily, IssuingStation.DefaultBalanceMaxMinor);
    }
}

/// <summary>
/// Top-ups by credit card (<c>/v1/topups</c>; docs/reliability.md, "Top-up"): exactly once across the
/// wallet's card, the operator's ledger and the credit authorizer. The charge is authorized first
/// (idempotency key: the top-up id), the CREDIT made for the card's session only when approved, the
/// credit posted when the card's answer (or its next greeting) proves it, and the charge captured
/// only after that commit; a CREDIT that provably never ran has its authorization voided, also
/// only after the commit that records it. The authorizer is never ahead of the ledger.
/// </summary>
internal sealed partial class TopUpService(
    Database database,
    ISecurityModule security,
    CardRecovery recovery,
    TopUpLimits limits,
    TimeProvider time,
    OperatorMetrics metrics,
    ILogger<TopUpService> logger,
    ICreditAuthorizer? authorizer = null)
{
    /// <summary>Why a void is asked for, for the authorizer's records.</summary>
    private const string VoidReason = "card_not_loaded";

    /// <summary>How many times a start decides again when a concurrent request changed the card first.</summary>
    private const int AttemptsMax = 4;

    /// <summary>Whether an authorizer is configured.</summary>
    public bool IsAvailable => authorizer is not null;

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

    /// <summary><c>POST /v1/topups/{id}/completion</c>: the card's answer to the top-up's CREDIT.</summary>
    public async Task<Result<TopUpView>> CompleteAsync(Guid topUpId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (authorizer is null)
        {
            return Unavailable();
        }

        if (CardRecovery.ParseCardAnswer(request.CardAnswer) is not var (answerBytes, answer))
        {
            return new Refusal(ProblemCode.RequestMalformed, "The card answer is not a base64 response APDU.");
        }

        TopUpRow credited;
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var (connection, transaction) = (write.Connection, write.Inner);
            var row = await TopUpRow.LoadAsync(connection, transaction, topUpId).ConfigureAwait(false);
            switch (row?.State)
            {
                case null or TopUpState.Authorizing or TopUpState.Declined:
                    return new Refusal(ProblemCode.TopUpNotFound, $"No top-up {topUpId} was credited to a card.");
                case TopUpState.Credited or TopUpState.Captured:
                    return row.CardAnswer is null || CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes)
                        ? row.View
                        : new Refusal(ProblemCode.CardAnswerInvalid, "The card took this top-up; this card answer is not the one that reported it.");
                case TopUpState.Voiding or TopUpState.Voided:
                    return new Refusal(ProblemCode.TopUpConflict, $"Top-up {topUpId} is {row.State.ToText()}: the card never took its credit.");
            }

            if (!answer.IsOk)
            {
                // Nothing is written: the card's next greeting proves the CREDIT never ran, and the authorization is voided then.
                return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the credit.");
            }

            var record = OpenCreditAnswer(row, answer);
            if (record is null || !await CreditedAsync(connection, transaction, row, record, answerBytes, time.GetUtcNow()).ConfigureAwait(false))
            {
                return new Refusal(ProblemCode.CardAnswerInvalid, "The card's answer does not verify for this top-up.");
            }

            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            credited = row with { State = TopUpState.Credited, BalanceAfterMinor = record.BalanceAfter.MinorUnits };
        }

        Entered(credited.Id, TopUpState.Credited, credited.Amount, credited.LastFour);
        // Only now, after the commit that posted the credit: the charge is captured.
        return await CaptureAsync(credited, cancellationToken).ConfigureAwait(false) is { } captured ? captured.View : credited.View;
    }

    /// <summary>
    /// The card's top-up CREDIT still open, judged from its authentic greeting inside the caller's
    /// transaction (a sync, a purchase start, a new top-up): ran → credited (topups → card), never
    /// ran → voiding. The caller commits, then calls <see cref="SettleAsync"/> with the id.
    /// </summary>
    /// <returns>The top-up and its state now, or null when the card has no top-up crediting.</returns>
    public static async Task<(Guid Id, TopUpState State)?> ResolveAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var row = await TopUpRow.LoadAsync(connection, transaction, $"card_id = @cardId AND state {TopUpStates.In(TopUpState.Crediting)}", new { cardId = greeting.CardId.Digits }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var evidence = row.CreditGreeting is { } stored && CardGreeting.TryParse(stored, out var creditGreeting)
            ? CardRecovery.Judge(greeting, row.Id, ValueKind.Credit, creditGreeting.Status.Counter, creditGreeting.SessionCounter)
            : CardEvidence.NeverRan;
        switch (evidence)
        {
            case CardEvidence.Ran when greeting.LastRecord!.Amount == row.Amount:
                return await CreditedAsync(connection, transaction, row, greeting.LastRecord, cardAnswer: null, now).ConfigureAwait(false)
                    ? (row.Id, TopUpState.Credited)
                    : throw new ConcurrentChangeException();
            case CardEvidence.NeverRan:
                return await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.GiveUp, row.Movement, now, Touch, parameters: new { now = StoredTime.Format(now) }).ConfigureAwait(false)
                    ? (row.Id, TopUpState.Voiding)
                    : throw new ConcurrentChangeException();
            default:
                return (row.Id, TopUpState.Crediting);
        }
    }

    /// <summary>
    /// After the commit that resolved a top-up: captures a credited one, voids a voiding one. A call
    /// the authorizer does not answer leaves the top-up as it is, for the sweeper.
    /// </summary>
    public async Task SettleAsync(Guid topUpId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        if (await TopUpRow.LoadAsync(connection, null, topUpId).ConfigureAwait(false) is not { } row)
        {
            return;
        }

        if (row.State == TopUpState.Credited)
        {
            Entered(row.Id, TopUpState.Credited, row.Amount, row.LastFour);
            await CaptureAsync(row, cancellationToken).ConfigureAwait(false);
        }
        else if (row.State == TopUpState.Voiding)
        {
            Entered(row.Id, TopUpState.Voiding, row.Amount, row.LastFour);
            await VoidAsync(row, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// After the commit of a session that may have resolved the card's top-up: captures what is
    /// credited and voids what is voiding, of this card. Nothing when no authorizer is configured.
    /// </summary>
    public async Task SettleCardAsync(CardId cardId, CancellationToken cancellationToken)
    {
        if (authorizer is null)
        {
            return;
        }

        IReadOnlyList<TopUpRow> open;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            open = await TopUpRow.ListAsync(connection, $"card_id = @cardId AND state {TopUpStates.In(TopUpState.Credited, TopUpState.Voiding)}", new { cardId = cardId.Digits }).ConfigureAwait(false);
        }

        foreach (var row in open)
        {
            await SettleAsync(row.Id, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>One sweep: captures what is credited and voids what is voiding, a bounded batch each.</summary>
    /// <returns>How many top-ups were captured or voided.</returns>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (authorizer is null)
        {
            return 0;
        }

        IReadOnlyList<TopUpRow> open;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            open = await TopUpRow.ListAsync(connection, $"state {TopUpStates.In(TopUpState.Credited, TopUpState.Voiding)} ORDER BY updated_at LIMIT 100", new { }).ConfigureAwait(false);
        }

        var done = 0;
        foreach (var row in open)
        {
            var settled = row.State == TopUpState.Credited
                ? await CaptureAsync(row, cancellationToken).ConfigureAwait(false)
                : await VoidAsync(row, cancellationToken).ConfigureAwait(false);
            done += settled is null ? 0 : 1;
        }

        return done;
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
                    await SettleAsync(id, cancellationToken).ConfigureAwait(false);
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
        Entered(request.TopUpId, TopUpState.Authorizing, amount, null);
        return null;
    }

    // The card's pending load, unresolved settlement and top-up still crediting, resolved from the
    // greeting in the caller's transaction; a refusal when one is still open.
    private async Task<Refusal?> ResolveOpenAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now, List<Guid> settle)
    {
        if (!await CardRecovery.ResolveLoadAsync(connection, transaction, greeting, now).ConfigureAwait(false))
        {
            return new Refusal(ProblemCode.CardBusy, "The card has an unfinished load that must be resolved first.");
        }

        if (await CardRecovery.FindUnresolvedAsync(connection, transaction, greeting.CardId).ConfigureAwait(false) is { } settlement)
        {
            var resolved = await recovery.ResolveAsync(connection, transaction, settlement, greeting, now).ConfigureAwait(false) ?? settlement.State;
            switch (resolved)
            {
                case SettlementState.Reversing:
                    return new Refusal(ProblemCode.CardSyncRequired, "The card paid a settlement that did not complete; the operator returns that amount first (openpurse card sync).");
                case SettlementState.Authorized or SettlementState.Expired:
                    return new Refusal(ProblemCode.CardBusy, "The card has an unfinished settlement that must be resolved first.");
            }
        }

        if (await ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false) is var (topUpId, state))
        {
            if (state == TopUpState.Crediting)
            {
                return new Refusal(ProblemCode.CardBusy, $"The card has top-up {topUpId} still open; run or abandon its credit first.");
            }

            settle.Add(topUpId);
        }

        if (await Decreases.ValueDecreaseService.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false) is { } decreaseId)
        {
            return new Refusal(ProblemCode.CardBusy, $"The card has value decrease {decreaseId} still open; run or abandon its debit first.");
        }

        if (await Credits.CardCredits.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false) is { } creditId)
        {
            return new Refusal(ProblemCode.CardBusy, $"The card has credit {creditId} still open; sync the card first (openpurse sync).");
        }

        return null;
    }

    // Asks the authorizer (the same key each time) and, when approved, makes the CREDIT in the card's session.
    private async Task<Result<TopUpResponse>> AuthorizeAsync(DbConnection connection, TopUpRequest request, CardGreeting greeting, byte[] hostChallenge, byte[] greetingBytes,
        CancellationToken cancellationToken)
    {
        var outcome = await authorizer!.AuthorizeAsync(new AuthorizeRequest(request.Amount, request.TopUpId.ToString(), request.CardData), request.TopUpId.ToString(), cancellationToken).ConfigureAwait(false);
        switch (outcome.Result)
        {
            case CreditResult.Unavailable or CreditResult.TimedOut:
                LogAuthorizerUnavailable(request.TopUpId, outcome.Result);
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
                return await CreditOnceAsync(connection, session, request, authorization, greeting, hostChallenge, greetingBytes, cancellationToken).ConfigureAwait(false);
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

        var order = new ValueCommand(row.Id, OrderDigest(row.Id), row.Amount, greeting.Status.Counter);
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var creditCommand = session.Credit(order).ToBytes();
        var balance = greeting.Status.BalanceOf(row.Amount.Currency) ?? Money.Zero(row.Amount.Currency);
        var valueUpdate = SignedMessage.Sign(security.OperatorKey,
            new ValueUpdate(row.Id, greeting.CardId.Digits, row.Amount, balance, ValueUpdatePurposes.TopUp, row.Id,
                Base64Url.EncodeToString(order.Digest.Span), Base64Url.EncodeToString(SHA256.HashData(creditCommand))),
            MessageTypes.ValueUpdate);
        var response = new TopUpResponse(row.Id, TopUpState.Crediting.ToText(), row.Amount, authorization.LastFour,
            new CardCredit(row.Id, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(creditCommand), valueUpdate));
        if (!await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.Approve, row.Movement, now,
                "authorization_id = @authorizationId, last_four = @lastFour, credit_greeting = @greetingBytes, credit_challenge = @hostChallenge, response = @response, " + Touch,
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
        Entered(row.Id, TopUpState.Crediting, row.Amount, authorization.LastFour);
        return response;
    }

    private async Task DeclineAsync(DbConnection connection, Guid topUpId, string code, string? lastFour, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        if (await TopUpRow.LoadAsync(write.Connection, write.Inner, topUpId).ConfigureAwait(false) is { } row
            && await TopUpStates.Machine.RunAsync(write.Connection, write.Inner, TopUpStates.Decline, row.Movement, now, "decline_code = @code, last_four = @lastFour, " + Touch,
                parameters: new { code, lastFour, now = StoredTime.Format(now) }).ConfigureAwait(false))
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            Entered(topUpId, TopUpState.Declined, row.Amount, lastFour);
        }
    }

    // Captures a credited top-up's charge; the top-up as captured, or null when the authorizer did not take it (the sweeper asks again).
    private async Task<TopUpRow?> CaptureAsync(TopUpRow row, CancellationToken cancellationToken)
    {
        if (row.AuthorizationId is null)
        {
            return null;
        }

        var outcome = await authorizer!.CaptureAsync(Guid.Parse(row.AuthorizationId), new CaptureRequest(row.Amount), cancellationToken).ConfigureAwait(false);
        if (outcome.Result != CreditResult.Answered)
        {
            LogSettleFailed(row.Id, "capture", outcome.Code ?? outcome.Result.ToString());
            return null;
        }

        return await MoveAsync(row, TopUpStates.Capture, cancellationToken).ConfigureAwait(false) ? row with { State = TopUpState.Captured } : null;
    }

    // Voids a voiding top-up's authorization; the top-up as voided, or null when the authorizer did not take it.
    private async Task<TopUpRow?> VoidAsync(TopUpRow row, CancellationToken cancellationToken)
    {
        if (row.AuthorizationId is null)
        {
            return null;
        }

        var outcome = await authorizer!.VoidAsync(Guid.Parse(row.AuthorizationId), new VoidRequest(VoidReason), cancellationToken).ConfigureAwait(false);
        // An authorization that expired holds nothing any more: as good as voided.
        if (outcome.Result != CreditResult.Answered && outcome.Problem != ProblemCode.AuthorizationExpired)
        {
            LogSettleFailed(row.Id, "void", outcome.Code ?? outcome.Result.ToString());
            return null;
        }

        return await MoveAsync(row, TopUpStates.Void, cancellationToken).ConfigureAwait(false) ? row with { State = TopUpState.Voided } : null;
    }

    private async Task<bool> MoveAsync(TopUpRow row, Transition<TopUpState> transition, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        if (!await TopUpStates.Machine.RunAsync(write.Connection, write.Inner, transition, row.Movement, now, Touch, parameters: new { now = StoredTime.Format(now) }).ConfigureAwait(false))
        {
            return false;
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        Entered(row.Id, transition.To, row.Amount, row.LastFour);
        return true;
    }

    // crediting → credited: topups → card for what the card's log says it took, and the card's shadow follows.
    private static async Task<bool> CreditedAsync(DbConnection connection, DbTransaction transaction, TopUpRow row, CardLogRecord record, byte[]? cardAnswer, DateTimeOffset now) =>
        record.Amount == row.Amount
        && await TopUpStates.Machine.RunAsync(connection, transaction, TopUpStates.Credit, row.Movement, now,
            "card_answer = @cardAnswer, balance_after_minor = @balanceAfter, " + Touch,
            parameters: new { cardAnswer, balanceAfter = record.BalanceAfter.MinorUnits, now = StoredTime.Format(now) }).ConfigureAwait(false)
        && await CardRecovery.FollowCardAsync(connection, transaction, row.CardId, record).ConfigureAwait(false);

    // Rebuilds the CREDIT's session from its stored greeting and challenge and opens the card's answer.
    private CardLogRecord? OpenCreditAnswer(TopUpRow row, ResponseApdu answer)
    {
        if (row.CreditGreeting is null || row.CreditChallenge is null || !CardGreeting.TryParse(row.CreditGreeting, out var greeting))
        {
            return null;
        }

        using var session = security.OpenCardSession(greeting.CardId, row.CreditChallenge, greeting, out _);
        if (session is null)
        {
            return null;
        }

        var order = new ValueCommand(row.Id, OrderDigest(row.Id), row.Amount, greeting.Status.Counter);
        session.ExternalAuthenticate();
        session.Credit(order);
        return session.TryUnwrap(answer, out var plain) && CardLogRecord.TryParse(plain.Data, out var record)
            && record.Kind == ValueKind.Credit && record.Counter == order.ExpectedCounter + 1 && record.Amount == order.Amount && record.TransactionRef == order.TransactionRef
            ? record
            : null;
    }

    // The answer to a request seen before, by the top-up's state.
    private static Result<TopUpResponse> Again(TopUpRow row) => row.State switch
    {
        TopUpState.Declined => DeclineRefusal(row.DeclineCode),
        TopUpState.Crediting or TopUpState.Credited or TopUpState.Captured when row.Response is { } response =>
            JsonSerializer.Deserialize<TopUpResponse>(response, ProtocolJson.Options)!,
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

    private static Refusal Unavailable() => new(ProblemCode.TopUpUnavailable, "No credit authorizer is configured: top-ups are not available.");

    // The digest a top-up's CREDIT carries: SHA-256 over "openpurse-topup:" and the top-up id, so the card's log names it.
    private static byte[] OrderDigest(Guid topUpId) =>
        SHA256.HashData([.. "openpurse-topup:"u8, .. topUpId.ToByteArray(bigEndian: true)]);

    // What makes two requests the same: every field, the encrypted card data only by its digest.
    private static string RequestDigest(TopUpRequest request) =>
        Convert.ToHexString(SHA256.HashData(ProtocolJson.ToUtf8(request)));

    private const string Touch = "updated_at = @now";

    // A line per state change: the id, the amount and the last four digits, nothing else of the card.
    private void Entered(Guid topUpId, TopUpState state, Money amount, string? lastFour)
    {
        var text = state.ToText();
        LogEntered(topUpId, text, amount, lastFour ?? "?");
        metrics.EnteredTopUp(text);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Top-up {TopUpId} of {Amount} (card ending {LastFour}): {State}")]
    private partial void LogEntered(Guid topUpId, string state, Money amount, string lastFour);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Top-up {TopUpId}: the credit authorizer did not answer ({Result}); the top-up stays authorizing until the same request comes again")]
    private partial void LogAuthorizerUnavailable(Guid topUpId, CreditResult result);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Top-up {TopUpId}: the {Call} was not taken by the credit authorizer ({Answer}); the sweeper asks again")]
    private partial void LogSettleFailed(Guid topUpId, string call, string answer);
}

/// <summary>A top-up as stored. It holds no card number, expiry, PIN or card data: the last four digits only.</summary>
internal sealed record TopUpRow
{
    private const string Select =
        """
        SELECT topup_id AS TopUpId, card_id AS CardId, amount_minor AS AmountMinor, currency AS Currency, request_digest AS RequestDigest,
               state AS StoredState, authorization_id AS AuthorizationId, last_four AS LastFour, decline_code AS DeclineCode,
               credit_greeting AS CreditGreeting, credit_challenge AS CreditChallenge, response AS Response, card_answer AS CardAnswer,
               balance_after_minor AS BalanceAfterMinor
        FROM topups WHERE
        """;

    public required string TopUpId { get; init; }

    public required string CardId { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required string RequestDigest { get; init; }

    public required TopUpState State { get; init; }

    public string? AuthorizationId { get; init; }

    public string? LastFour { get; init; }

    public string? DeclineCode { get; init; }

    public byte[]? CreditGreeting { get; init; }

    public byte[]? CreditChallenge { get; init; }

    public string? Response { get; init; }

    public byte[]? CardAnswer { get; init; }

    public long? BalanceAfterMinor { get; init; }

    public Guid Id => Guid.Parse(TopUpId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    /// <summary>What the top-up's journal entry needs of it.</summary>
    public Movement Movement => new(TopUpId, CardId, null, Amount);

    public TopUpView View => new(Id, State.ToText(), Amount, LastFour ?? "", BalanceAfterMinor is { } after ? new Money(after, Amount.Currency) : null);

    private string StoredState
    {
        init => State = TopUpStates.Machine.Parse(value);
    }

    public static Task<TopUpRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, Guid topUpId) =>
        LoadAsync(connection, transaction, "topup_id = @id", new { id = topUpId.ToString() });

    public static async Task<TopUpRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, string where, object parameters) =>
        await connection.QuerySingleOrDefaultAsync<TopUpRow>(Select + " " + where, parameters, transaction).ConfigureAwait(false);

    public static async Task<IReadOnlyList<TopUpRow>> ListAsync(DbConnection connection, string where, object parameters) =>
        [.. await connection.QueryAsync<TopUpRow>(Select + " " + where, parameters).ConfigureAwait(false)];
}
