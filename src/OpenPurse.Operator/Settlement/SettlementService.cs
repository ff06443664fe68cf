using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// The purchase in two round trips (docs/protocol.md). Start: check BILL+SIG1 (ST9), authenticate
/// the card and read its balance from the greeting (ST11, ST13), record the settlement and build
/// EXTERNAL AUTHENTICATE and the DEBIT (ST12, ST14), with SIG2 in profile "signed". Complete: open
/// the card's completion notice (ST18), commit, sign the ACN (ST19, SIG3), deliver it to the store
/// and return its receipt (SIG4).
/// </summary>
/// <remarks>
/// No settlement state lives in memory between the two calls: the second one rebuilds the card
/// session from the stored greeting, so any operator node can serve it.
/// </remarks>
internal sealed partial class SettlementService(
    Database database,
    StoreRegistry stores,
    ISecurityModule security,
    StoreNotifier notifier,
    TimeProvider time,
    ILogger<SettlementService> logger)
{
    /// <summary>A bill may be dated this far ahead of the operator's clock (clock skew).</summary>
    private static readonly TimeSpan s_clockSkewMax = TimeSpan.FromMinutes(2);

    /// <summary>The longest validity a bill may claim.</summary>
    private static readonly TimeSpan s_billLifetimeMax = TimeSpan.FromDays(1);

    private const int BillItemsMax = 100;

    /// <summary>
    /// How many times a start runs its checks: a concurrent start on the same card or bill that
    /// commits first costs one more run, so a start gives way to this many before answering card.busy.
    /// </summary>
    private const int RecordAttemptsMax = 4;

    public async Task<Result<StartSettlementResponse>> StartAsync(StartSettlementRequest request, CancellationToken cancellationToken)
    {
        var checkedBill = await CheckBillAsync(request.Bill, cancellationToken).ConfigureAwait(false);
        if (checkedBill.Refusal is { } billRefusal)
        {
            return billRefusal;
        }

        var (bill, store) = checkedBill.Value!;
        byte[] greetingBytes;
        try
        {
            greetingBytes = Convert.FromBase64String(request.CardGreeting);
        }
        catch (FormatException)
        {
            return Refusal.CardMalformed("The card greeting is not base64.");
        }

        if (!CardGreeting.TryParse(greetingBytes, out var greeting))
        {
            return Refusal.CardMalformed("The card greeting is not an OpenPurse INITIALIZE UPDATE answer.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var card = await connection.QuerySingleOrDefaultAsync<(string Status, long Counter)?>(
            "SELECT status, counter FROM cards WHERE card_id = @id", new { id = greeting.CardId.Digits }).ConfigureAwait(false);
        if (card is null)
        {
            return Refusal.CardUnknown($"Card {greeting.CardId.Masked} is not registered.");
        }

        if (card.Value.Status == "blocked")
        {
            return Refusal.CardBlocked($"Card {greeting.CardId.Masked} is blocked.");
        }

        // The host challenge is the bill's, computed here: the card's answer is bound to this bill only.
        var hostChallenge = SignedMessage.HostChallengeFor(request.Bill);
        var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out var authError);
        if (session is null)
        {
            return Refusal.CardAuthenticationFailed(authError == CardAuthenticationError.StatusMacInvalid
                ? "The card's balance readout was changed on the way."
                : "The card's cryptogram does not verify for this bill.");
        }

        using (session)
        {
            var status = greeting.Status;
            if (status.Counter < card.Value.Counter)
            {
                return Refusal.CardAuthenticationFailed("The card reports an older counter than the operator has seen.");
            }

            var balance = status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency);
            if (balance < bill.Amount)
            {
                return Refusal.CardInsufficientFunds($"The card holds {balance}; the bill is {bill.Amount}.");
            }

            var settlementId = Guid.CreateVersion7(time.GetUtcNow());
            var billDigest = SignedMessage.DigestBytes(request.Bill);
            var order = new ValueCommand(settlementId, billDigest, bill.Amount, status.Counter);
            var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
            var debit = session.Debit(order).ToBytes();
            string? settlementInfo = null;
            if (request.Profile == SettlementProfile.Signed)
            {
                var info = new SettlementInfo(settlementId, greeting.CardId.Digits, balance, bill.Amount,
                    Base64Url.EncodeToString(billDigest), Base64Url.EncodeToString(SHA256.HashData(debit)));
                settlementInfo = SignedMessage.Sign(security.OperatorKey, info, MessageTypes.SettlementInfo);
            }

            var recorded = await RecordAsync(connection, settlementId, request, bill, store, greeting, billDigest, cancellationToken).ConfigureAwait(false);
            if (recorded is { } refusal)
            {
                return refusal;
            }

            LogStarted(settlementId, bill.OrderNo, store.StoreId, bill.Amount, greeting.CardId.Masked);
            return new StartSettlementResponse(settlementId, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(debit), settlementInfo);
        }
    }

    public async Task<Result<CompleteSettlementResponse>> CompleteAsync(Guid settlementId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        byte[] answerBytes;
        ResponseApdu answer;
        try
        {
            answerBytes = Convert.FromBase64String(request.CardAnswer);
            answer = ResponseApdu.Parse(answerBytes);
        }
        catch (FormatException)
        {
            return Refusal.RequestMalformed("The card answer is not a base64 response APDU.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await LoadAsync(connection, settlementId).ConfigureAwait(false);
        if (row is null)
        {
            return Refusal.SettlementNotFound($"No settlement {settlementId}.");
        }

        switch (row.State)
        {
            case "completed" when row.CardAnswer is not null && CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes):
                // A retry of the same completion: the same answer, nothing done twice.
                return new CompleteSettlementResponse(row.CompletionNotice!, row.Receipt);
            case "completed":
                return Refusal.SettlementReplayed("The settlement is complete; this card answer is not the one that completed it.");
            case "voided":
                return Refusal.SettlementVoided("The settlement was voided; no debit is accepted for it.");
        }

        if (!answer.IsOk)
        {
            return Refusal.CardRefused($"The card answered {(ushort)answer.Status:X4} to the debit.");
        }

        var record = OpenCompletionNotice(row, answer);
        if (record is null)
        {
            return Refusal.CardAnswerInvalid("The card's completion notice does not verify for this settlement.");
        }

        var now = time.GetUtcNow();
        var acn = new CompletionNotice(settlementId, row.OrderNo, row.StoreId, row.MallId, row.Amount, row.BillDigest,
            CardIdOf(row).Masked, record.Counter, now);
        var acnJws = SignedMessage.Sign(security.OperatorKey, acn, MessageTypes.CompletionNotice);

        await using (var transaction = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            var updated = await connection.ExecuteAsync(
                """
                UPDATE settlements SET state = 'completed', completed_at = @now, card_answer = @answerBytes, completion_notice = @acnJws
                WHERE settlement_id = @id AND state = 'authorized'
                """,
                new { id = settlementId.ToString(), now = Clock.Format(now), answerBytes, acnJws },
                transaction).ConfigureAwait(false);
            if (updated != 1)
            {
                // Another node completed or voided it between our read and this write.
                return Refusal.SettlementReplayed("The settlement changed state meanwhile; ask for its state.");
            }

            // The counter only grows: one statement for both engines, where MAX and GREATEST differ.
            await connection.ExecuteAsync(
                "UPDATE cards SET counter = @counter WHERE card_id = @cardId AND counter < @counter",
                new { counter = (long)record.Counter, cardId = row.CardId }, transaction).ConfigureAwait(false);
            await connection.ExecuteAsync(
                """
                INSERT INTO card_purses (card_id, currency, balance_minor) VALUES (@cardId, @currency, @balance)
                ON CONFLICT (card_id, currency) DO UPDATE SET balance_minor = excluded.balance_minor
                """,
                new { cardId = row.CardId, currency = record.BalanceAfter.Currency.Code, balance = record.BalanceAfter.MinorUnits }, transaction).ConfigureAwait(false);
            await Journal.PostAsync(connection, transaction, settlementId.ToString(), now,
                ($"card:{row.CardId}", -row.Amount.MinorUnits), ($"store:{row.StoreId}", row.Amount.MinorUnits), row.Amount.Currency).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        LogCompleted(settlementId, row.OrderNo, row.StoreId);
        var receipt = await notifier.DeliverAsync(row.StoreId, acnJws, cancellationToken).ConfigureAwait(false);
        if (receipt is not null)
        {
            var accepted = await AcceptReceiptAsync(settlementId, receipt, cancellationToken).ConfigureAwait(false);
            receipt = accepted.Refusal is null ? receipt : null;
        }

        return new CompleteSettlementResponse(acnJws, receipt);
    }

    /// <summary>ST112: the store's receipt (SIG4), from the store directly or via the operator's own delivery.</summary>
    public async Task<Result<string>> AcceptReceiptAsync(Guid settlementId, string receiptJws, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await LoadAsync(connection, settlementId).ConfigureAwait(false);
        if (row is null)
        {
            return Refusal.SettlementNotFound($"No settlement {settlementId}.");
        }

        if (row.State != "completed" || row.CompletionNotice is null)
        {
            return Refusal.ReceiptInvalid("The settlement is not complete; there is nothing to acknowledge.");
        }

        var store = await stores.FindAsync(row.StoreId, cancellationToken).ConfigureAwait(false);
        var receipt = store is null ? null : SignedMessage.Verify<Receipt>(receiptJws, store.Value.Keys, MessageTypes.Receipt, out _);
        if (receipt is null || receipt.SettlementId != settlementId || receipt.OrderNo != row.OrderNo || receipt.StoreId != row.StoreId
            || receipt.Amount != row.Amount || receipt.CompletionDigest != SignedMessage.Digest(row.CompletionNotice))
        {
            return Refusal.ReceiptInvalid("The receipt's signature or content does not match the settlement.");
        }

        await connection.ExecuteAsync(
            "UPDATE settlements SET receipt = @receiptJws WHERE settlement_id = @id AND receipt IS NULL",
            new { id = settlementId.ToString(), receiptJws }).ConfigureAwait(false);
        return receiptJws;
    }

    public async Task<Result<SettlementView>> GetAsync(Guid settlementId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await LoadAsync(connection, settlementId).ConfigureAwait(false);
        return row is null
            ? Refusal.SettlementNotFound($"No settlement {settlementId}.")
            : new SettlementView(settlementId, row.State, row.OrderNo, row.StoreId, row.Amount, row.CompletionNotice, row.Receipt);
    }

    private async Task<Result<(Bill Bill, StoreRecord Store)>> CheckBillAsync(string? billJws, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(billJws) || Jws.PeekKeyId(billJws) is not { } kid)
        {
            return Refusal.BillMalformed("The bill is not a compact JWS with a key id.");
        }

        var found = await stores.FindByKeyAsync(kid, cancellationToken).ConfigureAwait(false);
        if (found is not var (store, keys))
        {
            return Refusal.BillUnknownStore($"No registered store has key '{kid}'.");
        }

        var bill = SignedMessage.Verify<Bill>(billJws, keys, MessageTypes.Bill, out var error);
        if (bill is null)
        {
            return error == "payload.malformed"
                ? Refusal.BillMalformed("The bill's content is not a bill.")
                : Refusal.BillSignatureInvalid($"SIG1 does not verify with {store.StoreId}'s key ({error}).");
        }

        if (bill.StoreId != store.StoreId || bill.MallId != store.MallId)
        {
            return Refusal.BillSignatureInvalid($"The bill names store '{bill.StoreId}' but is signed by '{store.StoreId}'.");
        }

        if (!bill.Amount.IsPositive || bill.Items.Count is 0 or > BillItemsMax || string.IsNullOrWhiteSpace(bill.OrderNo) || bill.OrderNo.Length > 64
            || bill.Items.Any(i => i.Quantity <= 0 || !i.Amount.Currency.Equals(bill.Amount.Currency))
            || bill.Items.Aggregate(Money.Zero(bill.Amount.Currency), (sum, i) => sum + i.Amount) != bill.Amount)
        {
            return Refusal.BillMalformed("The bill's amount must be positive and equal the sum of its items.");
        }

        var now = time.GetUtcNow();
        if (bill.ExpiresAt <= now)
        {
            return Refusal.BillExpired($"The bill expired at {bill.ExpiresAt:O}.");
        }

        if (bill.IssuedAt > now + s_clockSkewMax || bill.ExpiresAt - bill.IssuedAt > s_billLifetimeMax)
        {
            return Refusal.BillNotYetValid("The bill's dates are not plausible.");
        }

        return (bill, store);
    }

    // Records the settlement. A unique violation means a concurrent start took the same bill, order
    // or card after this one's checks read (PostgreSQL at READ COMMITTED; SQLite's single writer never
    // gets here): the checks, run again on what is committed now, answer as if the two had run one
    // after the other.
    private async Task<Refusal?> RecordAsync(DbConnection connection, Guid settlementId, StartSettlementRequest request, Bill bill, StoreRecord store,
        CardGreeting greeting, byte[] billDigest, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RecordOnceAsync(connection, settlementId, request, bill, store, greeting, billDigest, cancellationToken).ConfigureAwait(false);
            }
            catch (DbException e) when (database.IsUniqueViolation(e) && attempt < RecordAttemptsMax)
            {
                LogRaced(settlementId, attempt);
            }
            catch (DbException e) when (database.IsUniqueViolation(e))
            {
                return Refusal.CardBusy("The card or the bill is in other settlements started at the same moment.");
            }
        }
    }

    // One transaction: void an abandoned settlement of this card, if safe, and record the new one.
    private async Task<Refusal?> RecordOnceAsync(DbConnection connection, Guid settlementId, StartSettlementRequest request, Bill bill, StoreRecord store,
        CardGreeting greeting, byte[] billDigest, CancellationToken cancellationToken)
    {
        await using var transaction = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        var digest = Base64Url.EncodeToString(billDigest);
        var seen = await connection.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM settlements WHERE bill_digest = @digest OR (issuer = @issuer AND order_no = @orderNo)",
            new { digest, issuer = bill.Issuer, orderNo = bill.OrderNo }, transaction).ConfigureAwait(false);
        if (seen > 0)
        {
            return Refusal.BillReplayed($"Order {bill.OrderNo} of {bill.Issuer} was presented before.");
        }

        var open = await connection.QuerySingleOrDefaultAsync<(string Id, long ExpectedCounter, byte[] Greeting, string BillDigest)?>(
            "SELECT settlement_id, expected_counter, card_greeting, bill_digest FROM settlements WHERE card_id = @cardId AND state = 'authorized'",
            new { cardId = greeting.CardId.Digits }, transaction).ConfigureAwait(false);
        if (open is { } sameBill && sameBill.BillDigest == digest)
        {
            // The same bill committed by a concurrent start after this one's first check.
            return Refusal.BillReplayed($"Order {bill.OrderNo} of {bill.Issuer} was presented before.");
        }

        if (open is { } pending)
        {
            // The open settlement can be voided only if its debit can never run. Its commands belong
            // to the card session of its greeting; a greeting with a higher session counter proves the
            // card opened a later session — ending that one — and the unchanged counter proves the
            // debit had not run before. Any other case (an older greeting arriving late, or a counter
            // that moved) is left to recovery.
            var pendingSession = CardGreeting.TryParse(pending.Greeting, out var pendingGreeting) ? pendingGreeting.SessionCounter : uint.MaxValue;
            if (pending.ExpectedCounter != greeting.Status.Counter || greeting.SessionCounter <= pendingSession)
            {
                return Refusal.CardBusy("The card has an unfinished settlement that must be resolved first.");
            }

            await connection.ExecuteAsync("UPDATE settlements SET state = 'voided' WHERE settlement_id = @Id AND state = 'authorized'", new { pending.Id }, transaction).ConfigureAwait(false);
            LogVoided(pending.Id);
        }

        await connection.ExecuteAsync(
            """
            INSERT INTO settlements (settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
                                     card_id, card_greeting, expected_counter, state, created_at)
            VALUES (@id, @issuer, @orderNo, @storeId, @bill, @digest, @profile, @amount, @currency,
                    @cardId, @greetingBytes, @counter, 'authorized', @now)
            """,
            new
            {
                id = settlementId.ToString(),
                issuer = bill.Issuer,
                orderNo = bill.OrderNo,
                storeId = store.StoreId,
                bill = request.Bill,
                digest,
                profile = request.Profile == SettlementProfile.Signed ? "signed" : "lean",
                amount = bill.Amount.MinorUnits,
                currency = bill.Amount.Currency.Code,
                cardId = greeting.CardId.Digits,
                greetingBytes = Convert.FromBase64String(request.CardGreeting),
                counter = (long)greeting.Status.Counter,
                now = Clock.Format(time.GetUtcNow()),
            },
            transaction).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return null;
    }

    // Rebuilds the card session from the stored greeting and opens the card's answer to the DEBIT.
    private CardLogRecord? OpenCompletionNotice(SettlementRow row, ResponseApdu answer)
    {
        if (!CardGreeting.TryParse(row.CardGreeting, out var greeting))
        {
            return null;
        }

        using var session = security.OpenCardSession(greeting.CardId, SignedMessage.HostChallengeFor(row.Bill), greeting, out _);
        if (session is null)
        {
            return null;
        }

        var order = new ValueCommand(Guid.Parse(row.SettlementId), Base64Url.DecodeFromChars(row.BillDigest), row.Amount, (uint)row.ExpectedCounter);
        session.ExternalAuthenticate();
        session.Debit(order);
        if (!session.TryUnwrap(answer, out var plain) || !CardLogRecord.TryParse(plain.Data, out var record))
        {
            return null;
        }

        var matches = record.Kind == ValueKind.Debit && record.Counter == order.ExpectedCounter + 1 && record.Amount == order.Amount
            && record.TransactionRef == order.TransactionRef && record.Digest.Span.SequenceEqual(order.Digest.Span);
        return matches ? record : null;
    }

    private static CardId CardIdOf(SettlementRow row) => CardId.Parse(row.CardId);

    private static async Task<SettlementRow?> LoadAsync(DbConnection connection, Guid settlementId) =>
        await connection.QuerySingleOrDefaultAsync<SettlementRow>(
            """
            SELECT s.settlement_id AS SettlementId, s.order_no AS OrderNo, s.store_id AS StoreId, st.mall_id AS MallId, s.bill AS Bill,
                   s.bill_digest AS BillDigest, s.amount_minor AS AmountMinor, s.currency AS Currency, s.card_id AS CardId,
                   s.card_greeting AS CardGreeting, s.expected_counter AS ExpectedCounter, s.state AS State,
                   s.card_answer AS CardAnswer, s.completion_notice AS CompletionNotice, s.receipt AS Receipt
            FROM settlements s JOIN stores st ON st.store_id = s.store_id
            WHERE s.settlement_id = @id
            """,
            new { id = settlementId.ToString() }).ConfigureAwait(false);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} authorized: order {OrderNo} of {StoreId}, {Amount}, card {CardMasked}")]
    private partial void LogStarted(Guid settlementId, string orderNo, string storeId, Money amount, string cardMasked);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} completed: order {OrderNo} of {StoreId}")]
    private partial void LogCompleted(Guid settlementId, string orderNo, string storeId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} voided: its card started another one without running the debit")]
    private partial void LogVoided(string settlementId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId}: a concurrent start on the same card or bill committed first (attempt {Attempt}); checking again")]
    private partial void LogRaced(Guid settlementId, int attempt);

    private sealed class SettlementRow
    {
        public required string SettlementId { get; init; }

        public required string OrderNo { get; init; }

        public required string StoreId { get; init; }

        public string? MallId { get; init; }

        public required string Bill { get; init; }

        public required string BillDigest { get; init; }

        public required long AmountMinor { get; init; }

        public required string Currency { get; init; }

        public required string CardId { get; init; }

        public required byte[] CardGreeting { get; init; }

        public required long ExpectedCounter { get; init; }

        public required string State { get; init; }

        public byte[]? CardAnswer { get; init; }

        public string? CompletionNotice { get; init; }

        public string? Receipt { get; init; }

        public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));
    }
}
