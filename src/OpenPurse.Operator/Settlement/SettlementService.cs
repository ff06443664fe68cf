using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

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
    CardRecovery recovery,
    StoreNotifier notifier,
    OperatorOptions options,
    TimeProvider time,
    OperatorMetrics metrics,
    TopUps.TopUpResolution topUps,
    ILogger<SettlementService> logger)
{
    /// <summary>A bill may be dated this far ahead of the operator's clock (clock skew).</summary>
    private static readonly TimeSpan s_clockSkewMax = TimeSpan.FromMinutes(2);

    /// <summary>The longest validity a bill may claim.</summary>
    private static readonly TimeSpan s_billLifetimeMax = TimeSpan.FromDays(1);

    private const int BillItemsMax = 100;

    /// <summary>How long a store's signed settlement query is accepted after it was made.</summary>
    private static readonly TimeSpan s_queryLifetime = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How many times a start runs its checks: a concurrent start on the same card or bill that
    /// commits first costs one more run, so a start gives way to this many before answering card.busy.
    /// </summary>
    private const int RecordAttemptsMax = 4;

    /// <summary>The most points one receipt may award: a bound on what a store's key can put on a card at once.</summary>
    private const long PointsPerReceiptMax = 1_000_000;

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
            return new Refusal(ProblemCode.CardGreetingMalformed, "The card greeting is not base64.");
        }

        if (!CardGreeting.TryParse(greetingBytes, out var greeting))
        {
            return new Refusal(ProblemCode.CardGreetingMalformed, "The card greeting is not an OpenPurse INITIALIZE UPDATE answer.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        // A replayed bill is named as such before anything about the card (whose counter has moved on since).
        var billDigest = SignedMessage.DigestBytes(request.Bill);
        if (await EarlierAsync(connection, null, bill, Base64Url.EncodeToString(billDigest), greetingBytes).ConfigureAwait(false) is { } earlier)
        {
            return earlier;
        }

        var card = await connection.QuerySingleOrDefaultAsync<(string Status, long Counter)?>(
            "SELECT status, counter FROM cards WHERE card_id = @id", new { id = greeting.CardId.Digits }).ConfigureAwait(false);
        if (card is null)
        {
            return new Refusal(ProblemCode.CardUnknown, $"Card {greeting.CardId.Masked} is not registered.");
        }

        if (card.Value.Status == "blocked")
        {
            return new Refusal(ProblemCode.CardBlocked, $"Card {greeting.CardId.Masked} is blocked.");
        }

        // The host challenge is the bill's, computed here: the card's answer is bound to this bill only.
        var hostChallenge = SignedMessage.HostChallengeFor(request.Bill);
        var session = security.OpenCardSession(greeting.CardId, hostChallenge, greeting, out var authError);
        if (session is null)
        {
            return new Refusal(ProblemCode.CardAuthenticationFailed, authError switch
            {
                CardAuthenticationError.StatusMacInvalid => "The card's balance readout was changed on the way.",
                CardAuthenticationError.KeyVersionUnknown => $"The card's keys are of master key version {greeting.KeyVersion:X2}, which the operator does not hold.",
                _ => "The card's cryptogram does not verify for this bill.",
            });
        }

        using (session)
        {
            var status = greeting.Status;
            if (status.Counter < card.Value.Counter)
            {
                return new Refusal(ProblemCode.CardAuthenticationFailed, "The card reports an older counter than the operator has seen.");
            }

            var balance = status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency);
            if (balance < bill.Amount)
            {
                return new Refusal(ProblemCode.CardInsufficientFunds, $"The card holds {balance}; the bill is {bill.Amount}.");
            }

            var settlementId = Guid.CreateVersion7(time.GetUtcNow());
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

            var response = new StartSettlementResponse(settlementId, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(debit), settlementInfo);
            var recorded = await RecordAsync(connection, response, request, bill, store, greeting, billDigest, cancellationToken).ConfigureAwait(false);
            // A top-up the greeting resolved is captured or voided only now, after the commit.
            await topUps.SettleCardAsync(greeting.CardId, cancellationToken).ConfigureAwait(false);
            if (recorded.Refusal is null && recorded.Value!.SettlementId == settlementId)
            {
                LogStarted(settlementId, bill.OrderNo, store.StoreId, bill.Amount, greeting.CardId.Masked);
                metrics.Entered(SettlementStates.Initial);
            }

            return recorded;
        }
    }

    public async Task<Result<CompleteSettlementResponse>> CompleteAsync(Guid settlementId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        if (CardRecovery.ParseCardAnswer(request.CardAnswer) is not var (answerBytes, answer))
        {
            return new Refusal(ProblemCode.RequestMalformed, "The card answer is not a base64 response APDU.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await SettlementRow.LoadAsync(connection, settlementId).ConfigureAwait(false);
        if (row is null)
        {
            return new Refusal(ProblemCode.SettlementNotFound, $"No settlement {settlementId}.");
        }

        switch (row.State)
        {
            case SettlementState.Completed when row.CardAnswer is not null && CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes):
                // A retry of the same completion: the same answer, nothing done twice.
                return new CompleteSettlementResponse(row.CompletionNotice!, row.Receipt);
            case SettlementState.Completed when row.CardAnswer is null && answer.IsOk && OpenCompletionNotice(row, answer) is not null:
                // Completed from the card's log before its answer arrived: this is that debit's answer.
                await database.WriteAsync(connection,
                    "UPDATE settlements SET card_answer = @answerBytes WHERE settlement_id = @id AND card_answer IS NULL",
                    new { id = row.SettlementId, answerBytes }, cancellationToken).ConfigureAwait(false);
                return new CompleteSettlementResponse(row.CompletionNotice!, row.Receipt);
            case SettlementState.Completed:
                return new Refusal(ProblemCode.SettlementReplayed, "The settlement is complete; this card answer is not the one that completed it.");
            case SettlementState.Voided:
                return new Refusal(ProblemCode.SettlementVoided, "The settlement was voided; no debit is accepted for it.");
        }

        if (!answer.IsOk)
        {
            return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the debit.");
        }

        var record = OpenCompletionNotice(row, answer);
        if (record is null)
        {
            return new Refusal(ProblemCode.CardAnswerInvalid, "The card's completion notice does not verify for this settlement.");
        }

        if (row.State != SettlementState.Authorized)
        {
            // expired, reversing or reversed: the card paid after the deadline. The store was told it is
            // not paid; the debit is owed back to the card (once), and credited the next time it is online.
            await using (var late = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                if (await CardRecovery.OweBackAsync(late.Connection, late.Inner, row, record, time.GetUtcNow()).ConfigureAwait(false))
                {
                    await late.CommitAsync(cancellationToken).ConfigureAwait(false);
                    LogOwedBack(settlementId);
                    metrics.Entered(SettlementState.Reversing);
                }
            }

            return new Refusal(ProblemCode.SettlementExpired, "The card paid after the settlement's deadline: the store is not paid, and the amount goes back to the card the next time it is online (openpurse sync).");
        }

        SettlementRow? completed;
        await using (var transaction = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            completed = await recovery.CompleteAsync(transaction.Connection, transaction.Inner, row, record, answerBytes, ResolvedBy.CompletionNotice, time.GetUtcNow()).ConfigureAwait(false);
            if (completed is null)
            {
                // Another node completed, voided or expired it between our read and this write: answer from what it did.
                await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                return await CompleteAsync(settlementId, request, cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (completed.State == SettlementState.Reversing)
        {
            // Blocked between the two round trips: the store is told it is not paid, the holder keeps the value.
            LogReturnedBlocked(settlementId, row.StoreId);
            metrics.Entered(SettlementState.Reversing);
            await connection.DisposeAsync().ConfigureAwait(false);
            await TellStoreAsync(completed, cancellationToken).ConfigureAwait(false);
            return new Refusal(ProblemCode.CardBlocked, $"Card {CardId.Parse(row.CardId).Masked} was blocked before its payment completed: the store is not paid, and the amount stays its holder's.");
        }

        LogCompleted(settlementId, row.OrderNo, row.StoreId);
        metrics.Entered(SettlementState.Completed);
        // The connection goes back to the pool before the store is called: the delivery opens its
        // own, and one request holding two at once exhausts the pool under load.
        await connection.DisposeAsync().ConfigureAwait(false);
        var told = await TellStoreAsync(completed, cancellationToken).ConfigureAwait(false);
        return new CompleteSettlementResponse(completed.CompletionNotice!, told.Receipt);
    }

    /// <summary>
    /// Tells the store a settlement's final outcome: the ACN of a completed one (and accepts the
    /// receipt it answers with), the void notice of one that is not paid. Until the store
    /// acknowledged, the sweeper tells it again (<see cref="CardRecovery.RecordUntoldAsync"/>).
    /// </summary>
    /// <returns>The store's answer; when acknowledged, with the accepted receipt of an ACN.</returns>
    public async Task<StoreAnswer> TellStoreAsync(SettlementRow row, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.State == SettlementState.Completed)
        {
            var answer = await notifier.DeliverAsync(row.StoreId, row.CompletionNotice!, cancellationToken).ConfigureAwait(false);
            return answer is { Kind: StoreAnswerKind.Acknowledged, Receipt: { } receipt } && (await AcceptReceiptAsync(row, receipt, cancellationToken).ConfigureAwait(false)).Refusal is not null
                ? StoreAnswer.ReceiptRefused
                : answer;
        }

        if (row.VoidNotice is not { } notice)
        {
            return StoreAnswer.NoAddress;
        }

        var told = await notifier.DeliverVoidAsync(row.StoreId, notice, cancellationToken).ConfigureAwait(false);
        if (told.Kind == StoreAnswerKind.Acknowledged)
        {
            await database.WriteAsync(
                "UPDATE settlements SET store_told_at = @now WHERE settlement_id = @id AND store_told_at IS NULL",
                new { id = row.SettlementId, now = StoredTime.Format(time.GetUtcNow()) }, cancellationToken).ConfigureAwait(false);
        }

        return told;
    }

    /// <summary>
    /// The operator's decision on a disputed settlement, in one transaction: return the amount to
    /// the card (disputed → reversing; its next sync credits it) or tell the store again
    /// (disputed → completed; the sweeper retells its ACN from the next sweep).
    /// </summary>
    /// <returns>The settlement as it is now, or why not.</returns>
    public async Task<Result<SettlementView>> ResolveDisputeAsync(Guid settlementId, DisputeResolution resolution, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
            var row = await SettlementRow.LoadAsync(write.Connection, settlementId, write.Inner).ConfigureAwait(false);
            if (row is null)
            {
                return new Refusal(ProblemCode.SettlementNotFound, $"No settlement {settlementId}.");
            }

            var moved = row.State == SettlementState.Disputed && resolution switch
            {
                DisputeResolution.ReturnToCard => await recovery.ReturnDisputedAsync(write.Connection, write.Inner, row, time.GetUtcNow()).ConfigureAwait(false),
                _ => await CardRecovery.RetellDisputedAsync(write.Connection, write.Inner, row, time.GetUtcNow()).ConfigureAwait(false),
            };
            if (!moved)
            {
                return new Refusal(ProblemCode.SettlementNotDisputed, $"Settlement {settlementId} is {row.State.ToText()}, not disputed.");
            }

            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            LogDisputeResolved(settlementId, row.StoreId, resolution);
        }
        catch (DbException e) when (database.IsUniqueViolation(e))
        {
            // One unresolved settlement per card: the card's own unfinished one is resolved first, by its next greeting.
            return new Refusal(ProblemCode.CardBusy, $"The card of settlement {settlementId} has an unfinished settlement; return this one once its card has synced.");
        }

        // The administrator's answer: the settlement as it is now (the admin policy stands for the proof).
        await using var reading = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var now = await SettlementRow.LoadAsync(reading, settlementId).ConfigureAwait(false);
        return ViewOf(now!);
    }

    private static SettlementView ViewOf(SettlementRow row) =>
        new(row.Id, row.State.ToText(), row.OrderNo, row.StoreId, row.Amount, row.CompletionNotice, row.Receipt);

    /// <summary>ST112: the store's receipt (SIG4), from the store directly or via the operator's own delivery.</summary>
    public async Task<Result<string>> AcceptReceiptAsync(Guid settlementId, string receiptJws, CancellationToken cancellationToken)
    {
        SettlementRow? row;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            row = await SettlementRow.LoadAsync(connection, settlementId).ConfigureAwait(false);
        }

        return row is null
            ? new Refusal(ProblemCode.SettlementNotFound, $"No settlement {settlementId}.")
            : await AcceptReceiptAsync(row, receiptJws, cancellationToken).ConfigureAwait(false);
    }

    // The receipt for a settlement as read from the registry, or as this node just completed it.
    private async Task<Result<string>> AcceptReceiptAsync(SettlementRow row, string receiptJws, CancellationToken cancellationToken)
    {
        var settlementId = row.Id;
        if (row.State != SettlementState.Completed || row.CompletionNotice is null)
        {
            return new Refusal(ProblemCode.ReceiptInvalid, "The settlement is not complete; there is nothing to acknowledge.");
        }

        var store = await stores.FindAsync(row.StoreId, cancellationToken).ConfigureAwait(false);
        var receipt = store is null ? null : SignedMessage.Verify<Receipt>(receiptJws, store.Value.Keys, MessageTypes.Receipt, out _);
        if (receipt is null || receipt.SettlementId != settlementId || receipt.OrderNo != row.OrderNo || receipt.StoreId != row.StoreId
            || receipt.Amount != row.Amount || receipt.CompletionDigest != SignedMessage.Digest(row.CompletionNotice))
        {
            if (receipt is null && await stores.IsRetiredAsync(Jws.PeekKeyId(receiptJws), cancellationToken).ConfigureAwait(false))
            {
                return new Refusal(ProblemCode.StoreKeyRetired, "SIG4 is made with a store key that was retired.");
            }

            return new Refusal(ProblemCode.ReceiptInvalid, "The receipt's signature or content does not match the settlement.");
        }

        if (receipt.Points is { } points && (!points.Currency.IsPoints || !points.IsPositive || points.MinorUnits > PointsPerReceiptMax))
        {
            return new Refusal(ProblemCode.ReceiptInvalid, $"A receipt awards a positive number of points (PTS), at most {PointsPerReceiptMax}.");
        }

        // The first receipt is kept, and the points it awards are owed to the card in the same
        // transaction: a receipt delivered twice (by the store and by the operator's retell) awards once.
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var kept = await write.Connection.ExecuteAsync(
            "UPDATE settlements SET receipt = @receiptJws, store_told_at = COALESCE(store_told_at, @now) WHERE settlement_id = @id AND receipt IS NULL",
            new { id = settlementId.ToString(), receiptJws, now = StoredTime.Format(now) }, write.Inner).ConfigureAwait(false);
        if (kept == 1 && receipt.Points is { } awarded)
        {
            await Credits.CardCredits.OweAsync(write.Connection, write.Inner, row.CardId, awarded, ValueUpdatePurposes.Points, settlementId, Account.Store(row.StoreId), now).ConfigureAwait(false);
            LogPointsAwarded(settlementId, row.StoreId, awarded);
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return receiptJws;
    }

    /// <summary>
    /// A settlement as its store or its wallet may see it. The answer holds the ACN and the receipt,
    /// which open the download, so an id alone shows nothing: the store proves it is the settlement's
    /// with a <see cref="SettlementQuery"/> signed by its key, the wallet with the digest of the DEBIT
    /// that round trip 1 gave only to it. A proof that does not hold is answered as an unknown id, so
    /// that no answer tells whether somebody else's settlement exists.
    /// </summary>
    public async Task<Result<SettlementView>> GetAsync(Guid settlementId, string? storeQuery, string? debitDigest, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(storeQuery) && string.IsNullOrEmpty(debitDigest))
        {
            return new Refusal(ProblemCode.SettlementProofRequired,
                $"Prove the settlement is yours: a store sends its signed query in {SettlementReadProof.StoreHeader}, a wallet its DEBIT's digest in {SettlementReadProof.WalletHeader}.");
        }

        SettlementRow? row;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            row = await SettlementRow.LoadAsync(connection, settlementId).ConfigureAwait(false);
        }

        var proven = row is not null && (string.IsNullOrEmpty(storeQuery)
            ? IsWalletsProof(row, debitDigest!)
            : await IsStoresQueryAsync(row, storeQuery, cancellationToken).ConfigureAwait(false));
        return proven
            ? ViewOf(row!)
            : new Refusal(ProblemCode.SettlementNotFound, $"No settlement {settlementId} that the proof is for.");
    }

    // The wallet's proof: SHA-256 of the secured DEBIT it was given, compared in constant time.
    private static bool IsWalletsProof(SettlementRow row, string debitDigest) =>
        row.StartResponse is not null
        && CommandProof.Holds(debitDigest, Convert.FromBase64String(System.Text.Json.JsonSerializer.Deserialize<StartSettlementResponse>(row.StartResponse, ProtocolJson.Options)!.Debit));

    // The store's proof: a fresh query for this settlement, signed by the settlement's store.
    private async Task<bool> IsStoresQueryAsync(SettlementRow row, string storeQuery, CancellationToken cancellationToken)
    {
        var store = await stores.FindAsync(row.StoreId, cancellationToken).ConfigureAwait(false);
        var query = store is null ? null : SignedMessage.Verify<SettlementQuery>(storeQuery, store.Value.Keys, MessageTypes.SettlementQuery, out _);
        var now = time.GetUtcNow();
        return query is not null && query.SettlementId == row.Id && query.StoreId == row.StoreId
            && query.IssuedAt > now - s_queryLifetime && query.IssuedAt < now + s_clockSkewMax;
    }

    private async Task<Result<(Bill Bill, StoreRecord Store)>> CheckBillAsync(string? billJws, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(billJws) || Jws.PeekKeyId(billJws) is not { } kid)
        {
            return new Refusal(ProblemCode.BillMalformed, "The bill is not a compact JWS with a key id.");
        }

        var found = await stores.FindByKeyAsync(kid, cancellationToken).ConfigureAwait(false);
        if (found is not var (store, keys))
        {
            return new Refusal(ProblemCode.BillUnknownStore, $"No registered store has key '{kid}'.");
        }

        if (StoreRegistry.IsRetired(keys, kid))
        {
            return new Refusal(ProblemCode.StoreKeyRetired, $"Key '{kid}' of store '{store.StoreId}' was retired; the store signs with its new key.");
        }

        var bill = SignedMessage.Verify<Bill>(billJws, keys, MessageTypes.Bill, out var error);
        if (bill is null)
        {
            return error == "payload.malformed"
                ? new Refusal(ProblemCode.BillMalformed, "The bill's content is not a bill.")
                : new Refusal(ProblemCode.BillSignatureInvalid, $"SIG1 does not verify with {store.StoreId}'s key ({error}).");
        }

        if (bill.StoreId != store.StoreId || bill.MallId != store.MallId)
        {
            return new Refusal(ProblemCode.BillSignatureInvalid, $"The bill names store '{bill.StoreId}' but is signed by '{store.StoreId}'.");
        }

        // AddsUp sums with checked arithmetic: lines that overflow are a malformed bill, not a fault.
        if (bill.Items is not { Count: > 0 and <= BillItemsMax } || string.IsNullOrWhiteSpace(bill.OrderNo) || bill.OrderNo.Length > 64 || !bill.AddsUp())
        {
            return new Refusal(ProblemCode.BillMalformed, "The bill's amount must be positive and equal the sum of its items, each of a positive quantity and amount.");
        }

        var now = time.GetUtcNow();
        if (bill.ExpiresAt <= now)
        {
            return new Refusal(ProblemCode.BillExpired, $"The bill expired at {bill.ExpiresAt:O}.");
        }

        if (bill.IssuedAt > now + s_clockSkewMax || bill.ExpiresAt - bill.IssuedAt > s_billLifetimeMax)
        {
            return new Refusal(ProblemCode.BillNotYetValid, "The bill's dates are not plausible.");
        }

        return (bill, store);
    }

    // Records the settlement. A unique violation means a concurrent start took the same bill, order
    // or card after this one's checks read (PostgreSQL at READ COMMITTED; SQLite's single writer never
    // gets here): the checks, run again on what is committed now, answer as if the two had run one
    // after the other.
    private async Task<Result<StartSettlementResponse>> RecordAsync(DbConnection connection, StartSettlementResponse response, StartSettlementRequest request, Bill bill, StoreRecord store,
        CardGreeting greeting, byte[] billDigest, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RecordOnceAsync(connection, response, request, bill, store, greeting, billDigest, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when ((e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db))) && attempt < RecordAttemptsMax)
            {
                LogRaced(response.SettlementId, attempt);
            }
            catch (Exception e) when (e is ConcurrentChangeException || (e is DbException db && database.IsUniqueViolation(db)))
            {
                return new Refusal(ProblemCode.CardBusy, "The card or the bill is in other settlements started at the same moment.");
            }
        }
    }

    // One transaction: resolve what the card left unfinished from its greeting, then record the new
    // settlement. A retry of the same start (same bill, same greeting) gets the first answer again.
    private async Task<Result<StartSettlementResponse>> RecordOnceAsync(DbConnection opened, StartSettlementResponse response, StartSettlementRequest request, Bill bill, StoreRecord store,
        CardGreeting greeting, byte[] billDigest, CancellationToken cancellationToken)
    {
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var digest = Base64Url.EncodeToString(billDigest);
        var greetingBytes = Convert.FromBase64String(request.CardGreeting);
        if (await EarlierAsync(connection, transaction, bill, digest, greetingBytes).ConfigureAwait(false) is { } earlier)
        {
            return earlier;
        }

        var now = time.GetUtcNow();
        var leftOpen = await recovery.ResolveLeftOpenAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        if (leftOpen.Settlement is { } same && same.BillDigest == digest)
        {
            // The same bill, committed by a concurrent start after this one's first check (its own
            // greeting proves nothing about it).
            return Earlier(same.State.ToText(), same.CardGreeting, same.StartResponse, greetingBytes, bill);
        }

        if (leftOpen.Busy is { } busy)
        {
            // What the greeting proved stays proved; the card finishes what it left before it pays again.
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            return busy;
        }

        await connection.ExecuteAsync(
            """
            INSERT INTO settlements (settlement_id, issuer, order_no, store_id, bill, bill_digest, profile, amount_minor, currency,
                                     card_id, card_greeting, expected_counter, state, created_at, deadline, start_response)
            VALUES (@id, @issuer, @orderNo, @storeId, @bill, @digest, @profile, @amount, @currency,
                    @cardId, @greetingBytes, @counter, @state, @now, @deadline, @startResponse)
            """,
            new
            {
                id = response.SettlementId.ToString(),
                issuer = bill.Issuer,
                orderNo = bill.OrderNo,
                storeId = store.StoreId,
                bill = request.Bill,
                digest,
                profile = request.Profile == SettlementProfile.Signed ? "signed" : "lean",
                amount = bill.Amount.MinorUnits,
                currency = bill.Amount.Currency.Code,
                cardId = greeting.CardId.Digits,
                greetingBytes,
                counter = (long)greeting.Status.Counter,
                state = SettlementStates.Initial.ToText(),
                now = StoredTime.Format(now),
                deadline = StoredTime.Format(now + options.SettlementTimeout),
                startResponse = System.Text.Json.JsonSerializer.Serialize(response, ProtocolJson.Options),
            },
            transaction).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return response;
    }

    // A bill seen before: a retry of the same round trip 1 (same bill, same greeting) while its
    // settlement is still open gets the first answer; anything else is a replay.
    private static async Task<Result<StartSettlementResponse>?> EarlierAsync(DbConnection connection, DbTransaction? transaction, Bill bill, string digest, byte[] greetingBytes)
    {
        var seen = await connection.QueryAsync<(string State, byte[] Greeting, string? Response)>(
            "SELECT state, card_greeting, start_response FROM settlements WHERE bill_digest = @digest OR (issuer = @issuer AND order_no = @orderNo)",
            new { digest, issuer = bill.Issuer, orderNo = bill.OrderNo }, transaction).ConfigureAwait(false);
        foreach (var (state, greeting, response) in seen)
        {
            return Earlier(state, greeting, response, greetingBytes, bill);
        }

        return null;
    }

    private static Result<StartSettlementResponse> Earlier(string state, byte[] earlierGreeting, string? earlierResponse, byte[] greetingBytes, Bill bill) =>
        SettlementStates.Parse(state) == SettlementStates.Initial && earlierResponse is not null && CryptographicOperations.FixedTimeEquals(earlierGreeting, greetingBytes)
            ? System.Text.Json.JsonSerializer.Deserialize<StartSettlementResponse>(earlierResponse, ProtocolJson.Options)!
            : new Refusal(ProblemCode.BillReplayed, $"Order {bill.OrderNo} of {bill.Issuer} was presented before.");

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

        var order = new ValueCommand(row.Id, row.BillDigestBytes, row.Amount, (uint)row.ExpectedCounter);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Disputed settlement {SettlementId} of store {StoreId} resolved by the operator: {Resolution}")]
    private partial void LogDisputeResolved(Guid settlementId, string storeId, DisputeResolution resolution);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} authorized: order {OrderNo} of {StoreId}, {Amount}, card {CardMasked}")]
    private partial void LogStarted(Guid settlementId, string orderNo, string storeId, Money amount, string cardMasked);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId}: store {StoreId} awards {Points}, owed to the card until its next sync")]
    private partial void LogPointsAwarded(Guid settlementId, string storeId, Money points);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} completed: order {OrderNo} of {StoreId}")]
    private partial void LogCompleted(Guid settlementId, string orderNo, string storeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settlement {SettlementId} of {StoreId}: the card was blocked before the payment completed; the store is not paid, the amount is owed back to the card's holder")]
    private partial void LogReturnedBlocked(Guid settlementId, string storeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settlement {SettlementId}: the card paid after the deadline; the amount is owed back to the card")]
    private partial void LogOwedBack(Guid settlementId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId}: a concurrent start on the same card or bill committed first (attempt {Attempt}); checking again")]
    private partial void LogRaced(Guid settlementId, int attempt);
}

/// <summary>What the operator decides for a disputed settlement.</summary>
internal enum DisputeResolution
{
    /// <summary>The amount goes back to the card (disputed → reversing); the store is told the order is not paid.</summary>
    ReturnToCard,

    /// <summary>The store is told its ACN again (disputed → completed), with a fresh count of attempts.</summary>
    TellStoreAgain,
}
