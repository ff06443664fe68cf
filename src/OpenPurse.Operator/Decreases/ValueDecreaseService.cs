using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Operator.TopUps;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Decreases;

/// <summary>A DEBIT made for a transfer or a cash-out, as its start answers it.</summary>
internal sealed record DecreaseStarted(Guid Id, string State, Money Amount, string Payee, CardDebit Debit);

/// <summary>
/// Value the card holder takes off the card (<c>/v1/transfers</c>, <c>/v1/cashouts</c>;
/// docs/reliability.md, "Transfer and cash-out"): a DEBIT made for the card's session, described by
/// the value decrease information the operator signs, and exactly once: its effect (the payee card's
/// credit, the payout) is posted only when the card's answer, or its next greeting, proves it ran,
/// and a DEBIT that provably never ran is abandoned with nothing moved.
/// </summary>
internal sealed partial class ValueDecreaseService(
    Database database,
    ISecurityModule security,
    CardRecovery recovery,
    TopUpResolution topUps,
    TimeProvider time,
    ILogger<ValueDecreaseService> logger)
{
    /// <summary>How many times a start decides again when a concurrent request changed the card first.</summary>
    private const int AttemptsMax = 4;

    /// <summary>The longest account holder's name a bank transfer carries (SEPA: 70 characters).</summary>
    private const int HolderLengthMax = 70;

    /// <summary><c>POST /v1/transfers</c>.</summary>
    public async Task<Result<TransferResponse>> StartTransferAsync(TransferRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.TransferId == Guid.Empty || string.IsNullOrEmpty(request.PayeeCard))
        {
            return new Refusal(ProblemCode.RequestMalformed, "A transfer has an id, an amount and the payee card.");
        }

        if (!CardId.TryParse(request.PayeeCard, out var payee))
        {
            return new Refusal(ProblemCode.TransferPayeeInvalid, "The payee is not a card number (16 digits with a valid check digit).");
        }

        var started = await StartAsync(DecreaseKind.Transfer, request.TransferId, request.Amount, payee.Digits, holder: null, request.HostChallenge, request.CardGreeting,
            RequestDigest(request), cancellationToken).ConfigureAwait(false);
        return started.Value is { } value ? new TransferResponse(value.Id, value.State, value.Amount, value.Payee, value.Debit) : started.Refusal!;
    }

    /// <summary><c>POST /v1/cashouts</c>.</summary>
    public async Task<Result<CashOutResponse>> StartCashOutAsync(CashOutRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.CashOutId == Guid.Empty)
        {
            return new Refusal(ProblemCode.RequestMalformed, "A cash-out has an id, an amount, an IBAN and the account holder's name.");
        }

        var error = Iban.TryNormalize(request.Iban, out var iban);
        if (error != IbanError.None)
        {
            // The detail never repeats what was typed: it may be a real account's number.
            return new Refusal(ProblemCode.IbanInvalid, error switch
            {
                IbanError.UnknownCountry => "The IBAN's country has no IBANs.",
                IbanError.WrongLength => "The IBAN does not have its country's length.",
                IbanError.CheckDigits => "The IBAN's check digits do not match: a character is mistyped.",
                _ => "An IBAN is two letters, two check digits and up to 30 letters or digits.",
            });
        }

        var holder = request.AccountHolder?.Trim();
        if (string.IsNullOrEmpty(holder) || holder.Length > HolderLengthMax || holder.Any(char.IsControl))
        {
            return new Refusal(ProblemCode.CashOutHolderInvalid, $"The account holder's name is required: up to {HolderLengthMax} characters, no control characters.");
        }

        var started = await StartAsync(DecreaseKind.CashOut, request.CashOutId, request.Amount, iban, holder, request.HostChallenge, request.CardGreeting,
            RequestDigest(request), cancellationToken).ConfigureAwait(false);
        return started.Value is { } value ? new CashOutResponse(value.Id, value.State, value.Amount, value.Payee, value.Debit) : started.Refusal!;
    }

    /// <summary><c>POST /v1/transfers/{id}/completion</c>.</summary>
    public async Task<Result<TransferView>> CompleteTransferAsync(Guid transferId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        var row = await CompleteAsync(DecreaseKind.Transfer, transferId, request, cancellationToken).ConfigureAwait(false);
        return row.Value is { } value ? new TransferView(value.Id, value.State, value.Amount, value.MaskedPayee, value.BalanceAfter) : row.Refusal!;
    }

    /// <summary><c>POST /v1/cashouts/{id}/completion</c>.</summary>
    public async Task<Result<CashOutView>> CompleteCashOutAsync(Guid cashOutId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        var row = await CompleteAsync(DecreaseKind.CashOut, cashOutId, request, cancellationToken).ConfigureAwait(false);
        return row.Value is { } value ? new CashOutView(value.Id, value.State, value.Amount, value.MaskedPayee, value.BalanceAfter) : row.Refusal!;
    }

    /// <summary>
    /// The card's transfer or cash-out DEBIT still open, judged from its authentic greeting inside
    /// the caller's transaction (a sync, a purchase start, a top-up, a new value decrease): ran →
    /// debited with its effect, once; never ran → abandoned.
    /// </summary>
    /// <returns>The id of a DEBIT still open that the greeting proves nothing about, or null.</returns>
    public static async Task<Guid?> ResolveAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        Guid? open = null;
        foreach (var kind in DecreaseKind.All)
        {
            if (await kind.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false) is (var row, true))
            {
                open ??= row.Id;
            }
        }

        return open;
    }

    private async Task<Result<DecreaseStarted>> StartAsync(DecreaseKind kind, Guid id, Money amount, string payee, string? holder, string? hostChallengeText, string? greetingText,
        string digest, CancellationToken cancellationToken)
    {
        byte[] hostChallenge;
        byte[] greetingBytes;
        try
        {
            hostChallenge = Convert.FromBase64String(hostChallengeText ?? "");
            greetingBytes = Convert.FromBase64String(greetingText ?? "");
        }
        catch (FormatException)
        {
            return new Refusal(ProblemCode.RequestMalformed, "The host challenge and the card greeting are base64.");
        }

        if (amount == default || amount.MinorUnits <= 0)
        {
            return new Refusal(ProblemCode.RequestMalformed, $"A {kind.Name} takes an amount above zero.");
        }

        if (hostChallenge.Length != Protocol.Channel.Scp03.ChallengeLength || !CardGreeting.TryParse(greetingBytes, out var greeting))
        {
            return new Refusal(ProblemCode.CardGreetingMalformed, "The card greeting is not an OpenPurse INITIALIZE UPDATE answer to an 8-byte host challenge.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        if (await kind.LoadAsync(connection, null, id).ConfigureAwait(false) is { } earlier)
        {
            return earlier.RequestDigest == digest ? Again(earlier) : new Refusal(kind.Conflict, $"{Capitalized(kind)} {id} was asked for with another request.");
        }

        var card = await connection.QuerySingleOrDefaultAsync<(string Status, long Counter)?>(
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

        if (kind == DecreaseKind.Transfer)
        {
            var payeeStatus = await connection.QuerySingleOrDefaultAsync<string?>("SELECT status FROM cards WHERE card_id = @id", new { id = payee }).ConfigureAwait(false);
            if (payee == greeting.CardId.Digits || payeeStatus != "active")
            {
                return new Refusal(ProblemCode.TransferPayeeInvalid, payee == greeting.CardId.Digits
                    ? "A card does not transfer to itself."
                    : $"Card {kind.MaskPayee(payee)} is {(payeeStatus is null ? "not registered" : "blocked")}: it cannot receive a transfer.");
            }
        }

        using (var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out _))
        {
            if (session is null)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card's greeting does not verify.");
            }
        }

        if (greeting.Status.BalanceOf(amount.Currency) is not { } balance)
        {
            return new Refusal(ProblemCode.CardInsufficientFunds, $"The card has no {amount.Currency.Code} purse.");
        }

        if (balance < amount)
        {
            return new Refusal(ProblemCode.CardInsufficientFunds, $"The card holds {balance}; the {kind.Name} is {amount}.");
        }

        var asked = new Asked(kind, id, amount, payee, holder, digest, greeting, hostChallenge, greetingBytes, balance);
        for (var attempt = 1; ; attempt++)
        {
            // A session per attempt: making the DEBIT moves the session's MAC chain.
            using var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out _);
            if (session is null)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card's greeting does not verify.");
            }

            try
            {
                var started = await RecordOnceAsync(connection, session, asked, cancellationToken).ConfigureAwait(false);
                // A top-up the greeting resolved is captured or voided only now, after the commit.
                await topUps.SettleCardAsync(greeting.CardId, cancellationToken).ConfigureAwait(false);
                return started;
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

    // One transaction: what the card left open is resolved from its greeting, then the DEBIT is made
    // and recorded with the row, so that the card's answer or its next greeting finds it.
    private async Task<Result<DecreaseStarted>> RecordOnceAsync(DbConnection opened, CardHostSession session, Asked asked, CancellationToken cancellationToken)
    {
        var (kind, greeting) = (asked.Kind, asked.Greeting);
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.LockCardSyncAsync(connection, transaction, greeting.CardId.Digits).ConfigureAwait(false);
        if (await kind.LoadAsync(connection, transaction, asked.Id).ConfigureAwait(false) is { } earlier)
        {
            // A concurrent same request recorded it first.
            return earlier.RequestDigest == asked.Digest ? Again(earlier) : new Refusal(kind.Conflict, $"{Capitalized(kind)} {asked.Id} was asked for with another request.");
        }

        if ((await recovery.ResolveLeftOpenAsync(connection, transaction, greeting, now).ConfigureAwait(false)).Busy is { } open)
        {
            // What the greeting proved stays proved.
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return open;
        }

        var counter = await connection.ExecuteScalarAsync<long>("SELECT counter FROM cards WHERE card_id = @id", new { id = greeting.CardId.Digits }, transaction).ConfigureAwait(false);
        if (greeting.Status.Counter < counter)
        {
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new Refusal(ProblemCode.CardAuthenticationFailed, "The card reports an older counter than the operator has seen: this greeting is not the card's latest.");
        }

        var orderDigest = ValueDecreasePurposes.OrderDigest(kind.Purpose, asked.Id, asked.Amount, asked.Payee);
        var order = new ValueCommand(asked.Id, orderDigest, asked.Amount, greeting.Status.Counter);
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var debitCommand = session.Debit(order).ToBytes();
        var payeeShown = kind.MaskPayee(asked.Payee);
        var decrease = SignedMessage.Sign(security.OperatorKey,
            new ValueDecrease(asked.Id, greeting.CardId.Digits, asked.Amount, asked.Balance, kind.Purpose, asked.Id, payeeShown,
                Base64Url.EncodeToString(orderDigest), Base64Url.EncodeToString(SHA256.HashData(debitCommand))),
            MessageTypes.ValueDecrease);
        var debit = new CardDebit(asked.Id, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(debitCommand), decrease);
        var response = JsonSerializer.Serialize(debit, ProtocolJson.Options);
        var (columns, values) = kind == DecreaseKind.CashOut ? (", account_holder", ", @holder") : ("", "");
        await connection.ExecuteAsync(
            $"""
            INSERT INTO {kind.Table} ({kind.Key}, card_id, {kind.PayeeColumn}{columns}, amount_minor, currency, request_digest, state, debit_greeting, debit_challenge, response, created_at, updated_at)
            VALUES (@id, @cardId, @payee{values}, @amount, @currency, @digest, @state, @greetingBytes, @hostChallenge, @response, @now, @now)
            """,
            new
            {
                id = asked.Id.ToString(),
                cardId = greeting.CardId.Digits,
                payee = asked.Payee,
                holder = asked.Holder,
                amount = asked.Amount.MinorUnits,
                currency = asked.Amount.Currency.Code,
                digest = asked.Digest,
                state = kind.Debiting,
                greetingBytes = asked.GreetingBytes,
                hostChallenge = asked.HostChallenge,
                response,
                now = StoredTime.Format(now),
            },
            transaction).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        LogEntered(kind.Name, asked.Id, asked.Amount, payeeShown, kind.Debiting);
        return new DecreaseStarted(asked.Id, kind.Debiting, asked.Amount, payeeShown, debit);
    }

    private async Task<Result<DecreaseRow>> CompleteAsync(DecreaseKind kind, Guid id, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (CardRecovery.ParseCardAnswer(request.CardAnswer) is not var (answerBytes, answer))
        {
            return new Refusal(ProblemCode.RequestMalformed, "The card answer is not a base64 response APDU.");
        }

        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var row = await kind.LoadAsync(connection, transaction, id).ConfigureAwait(false);
        if (row is null)
        {
            return new Refusal(kind.NotFound, $"No {kind.Name} {id}.");
        }

        if (row.State == kind.Abandoned)
        {
            return new Refusal(kind.Conflict, $"{Capitalized(kind)} {id} is abandoned: the card never ran its debit.");
        }

        if (row.State != kind.Debiting)
        {
            // Debited before (by this answer, or from the card's log): nothing happens twice.
            return row.CardAnswer is null || CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes)
                ? row
                : new Refusal(ProblemCode.CardAnswerInvalid, $"The card ran this {kind.Name}'s debit; this card answer is not the one that reported it.");
        }

        if (!answer.IsOk)
        {
            // Nothing is written: the card's next greeting proves the DEBIT never ran, and the row is abandoned then.
            return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the debit.");
        }

        var record = OpenDebitAnswer(row, answer);
        var now = time.GetUtcNow();
        if (record is null || !await kind.DebitedAsync(connection, transaction, row, record, answerBytes, now).ConfigureAwait(false)
            || !await CardRecovery.FollowCardAsync(connection, transaction, row.CardId, record, kind.Name, now).ConfigureAwait(false))
        {
            return new Refusal(ProblemCode.CardAnswerInvalid, $"The card's answer does not verify for this {kind.Name}.");
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        var debited = (await kind.LoadAsync(connection, null, id).ConfigureAwait(false))!;
        LogEntered(kind.Name, id, row.Amount, row.MaskedPayee, debited.State);
        return debited;
    }

    // Rebuilds the DEBIT's session from its stored greeting and challenge and opens the card's answer.
    private CardLogRecord? OpenDebitAnswer(DecreaseRow row, ResponseApdu answer)
    {
        if (!CardGreeting.TryParse(row.DebitGreeting, out var greeting))
        {
            return null;
        }

        using var session = security.OpenCardSession(greeting.CardId, row.DebitChallenge, greeting, out _);
        if (session is null)
        {
            return null;
        }

        var order = new ValueCommand(row.Id, row.Kind.OrderDigest(row), row.Amount, greeting.Status.Counter);
        session.ExternalAuthenticate();
        session.Debit(order);
        return session.TryUnwrap(answer, out var plain) && CardLogRecord.TryParse(plain.Data, out var record)
            && record.Kind == ValueKind.Debit && record.Counter == order.ExpectedCounter + 1 && record.Amount == order.Amount
            && record.TransactionRef == order.TransactionRef && record.Digest.Span.SequenceEqual(order.Digest.Span)
            ? record
            : null;
    }

    // The answer to a request seen before: the DEBIT made then, whatever became of it since, unless it was abandoned.
    private static Result<DecreaseStarted> Again(DecreaseRow row) => row.State == row.Kind.Abandoned
        ? new Refusal(row.Kind.Conflict, $"{Capitalized(row.Kind)} {row.Id} is abandoned: the card never ran its debit.")
        : new DecreaseStarted(row.Id, row.State, row.Amount, row.MaskedPayee, JsonSerializer.Deserialize<CardDebit>(row.Response, ProtocolJson.Options)!);

    private static string Capitalized(DecreaseKind kind) => char.ToUpperInvariant(kind.Name[0]) + kind.Name[1..];

    // What makes two requests the same: every field.
    private static string RequestDigest(object request) => Convert.ToHexString(SHA256.HashData(ProtocolJson.ToUtf8(request)));

    // The payee only masked: a card's last four digits, an IBAN's country and last four characters.
    [LoggerMessage(Level = LogLevel.Information, Message = "Value decrease ({Kind}) {Id} of {Amount} to {Payee}: {State}")]
    private partial void LogEntered(string kind, Guid id, Money amount, string payee, string state);

    private sealed record Asked(DecreaseKind Kind, Guid Id, Money Amount, string Payee, string? Holder, string Digest, CardGreeting Greeting,
        byte[] HostChallenge, byte[] GreetingBytes, Money Balance);
}
