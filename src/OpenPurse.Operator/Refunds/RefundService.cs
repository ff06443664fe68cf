using System.Buffers.Binary;
using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Refunds;

/// <summary>
/// A store gives back (part of) a payment it was paid (<c>POST /v1/refunds</c>, docs/protocol.md,
/// "Refund"): its signed request is checked against the keys it registered, the settlement it names
/// must be its own and completed, and its refunds together never exceed what was paid. One
/// transaction records the refund and its entry store → pending; the card takes the value as a
/// CREDIT at its next sync. The answer is the operator's signed <see cref="RefundNotice"/>.
/// </summary>
/// <remarks>
/// The refunds of one settlement are serialized: on PostgreSQL by an advisory lock on the
/// settlement taken first in the transaction, on SQLite by its single writer. Two refunds that race
/// thus read and extend the sum of the settlement's refunds one after the other.
/// </remarks>
internal sealed partial class RefundService(
    Database database,
    StoreRegistry stores,
    ISecurityModule security,
    TimeProvider time,
    OperatorMetrics metrics,
    ILogger<RefundService> logger)
{
    /// <summary>How long a signed refund request (or a store's query) is accepted after it was made.</summary>
    private static readonly TimeSpan s_requestLifetime = TimeSpan.FromMinutes(5);

    /// <summary>A request may be dated this far ahead of the operator's clock (clock skew).</summary>
    private static readonly TimeSpan s_clockSkewMax = TimeSpan.FromMinutes(2);

    /// <summary>Records a refund, or answers the one recorded for the same request before.</summary>
    public async Task<Result<RefundAnswer>> RefundAsync(RefundSubmission submission, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var verified = await VerifyAsync(submission.Request, cancellationToken).ConfigureAwait(false);
        if (verified.Refusal is { } refusal)
        {
            return refusal;
        }

        var request = verified.Value!;
        var digest = DigestOf(request);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await RecordAsync(connection, request, submission.Request, digest, cancellationToken).ConfigureAwait(false);
        }
        catch (DbException e) when (database.IsUniqueViolation(e))
        {
            // The same refund id recorded at the same moment for another settlement (the lock is per
            // settlement): what was committed answers now.
            return await RecordAsync(connection, request, submission.Request, digest, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A refund as its store may see it: the store proves it is the refund's with a
    /// <see cref="SettlementQuery"/> for the refund's settlement, signed by its key. A proof that does
    /// not hold is answered as an unknown id. The notice says <c>credited</c> once the card took it.
    /// </summary>
    public async Task<Result<RefundAnswer>> GetAsync(Guid refundId, string? storeQuery, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(storeQuery))
        {
            return new Refusal(ProblemCode.RefundProofRequired,
                $"Prove the refund is yours: send a signed query for its settlement in {SettlementReadProof.StoreHeader}.");
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var row = await RefundRow.LoadAsync(connection, null, refundId).ConfigureAwait(false);
        if (row is null || !await IsStoresQueryAsync(row, storeQuery, cancellationToken).ConfigureAwait(false))
        {
            return new Refusal(ProblemCode.RefundNotFound, $"No refund {refundId} that the proof is for.");
        }

        return new RefundAnswer(await CurrentNoticeAsync(connection, row, cancellationToken).ConfigureAwait(false));
    }

    // The store's signature on the request, with one of the keys it registered, and the request's own checks.
    private async Task<Result<RefundRequest>> VerifyAsync(string? requestJws, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(requestJws) || Jws.PeekKeyId(requestJws) is not { } kid)
        {
            return new Refusal(ProblemCode.RefundMalformed, "The refund request is not a compact JWS with a key id.");
        }

        if (await stores.FindByKeyAsync(kid, cancellationToken).ConfigureAwait(false) is not var (store, keys))
        {
            return new Refusal(ProblemCode.RefundSignatureInvalid, $"No registered store has key '{kid}'.");
        }

        if (StoreRegistry.IsRetired(keys, kid))
        {
            return new Refusal(ProblemCode.StoreKeyRetired, $"Key '{kid}' of store '{store.StoreId}' was retired.");
        }

        var request = SignedMessage.Verify<RefundRequest>(requestJws, keys, MessageTypes.RefundRequest, out var error);
        if (request is null)
        {
            return error == "payload.malformed"
                ? new Refusal(ProblemCode.RefundMalformed, "The refund request's content is not a refund request.")
                : new Refusal(ProblemCode.RefundSignatureInvalid, $"The refund request does not verify with {store.StoreId}'s keys ({error}).");
        }

        if (request.StoreId != store.StoreId)
        {
            return new Refusal(ProblemCode.RefundSignatureInvalid, $"The refund request names store '{request.StoreId}' but is signed by '{store.StoreId}'.");
        }

        if (request.RefundId == Guid.Empty || request.Reason is { Length: > RefundRequest.ReasonLengthMax } || (request.Reason?.Any(char.IsControl) ?? false))
        {
            return new Refusal(ProblemCode.RefundMalformed, $"A refund has an id, and a reason of at most {RefundRequest.ReasonLengthMax} characters without control characters.");
        }

        var now = time.GetUtcNow();
        if (request.IssuedAt <= now - s_requestLifetime || request.IssuedAt > now + s_clockSkewMax)
        {
            return new Refusal(ProblemCode.RefundStale, $"The refund request was signed at {request.IssuedAt:O}; it is accepted for {s_requestLifetime.TotalMinutes:0} minutes.");
        }

        if (request.Amount == default || !request.Amount.IsPositive)
        {
            return new Refusal(ProblemCode.RefundAmountInvalid, "A refund's amount is positive.");
        }

        return request;
    }

    // One transaction, serialized per settlement: the checks on what is committed, the row, the entry, the notice.
    private async Task<Result<RefundAnswer>> RecordAsync(DbConnection opened, RefundRequest request, string requestJws, string digest, CancellationToken cancellationToken)
    {
        await using var write = await database.BeginWriteAsync(opened, cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.Dialect.LockAsync(connection, transaction, LockKey(request.SettlementId)).ConfigureAwait(false);
        if (await RefundRow.LoadAsync(connection, transaction, request.RefundId).ConfigureAwait(false) is { } earlier)
        {
            return earlier.RequestDigest == digest
                ? new RefundAnswer(earlier.Notice)
                : new Refusal(ProblemCode.RefundConflict, $"Refund {request.RefundId} was recorded for another request.");
        }

        var settlement = await SettlementRow.LoadAsync(connection, request.SettlementId, transaction).ConfigureAwait(false);
        if (settlement is null || settlement.StoreId != request.StoreId)
        {
            // Another store's settlement is answered as an unknown one: no answer tells whether it exists.
            return new Refusal(ProblemCode.SettlementNotFound, $"Store {request.StoreId} has no settlement {request.SettlementId}.");
        }

        if (settlement.State != SettlementState.Completed)
        {
            return new Refusal(ProblemCode.RefundNotPaid, $"Settlement {settlement.Id} is {settlement.State.ToText()}: only a completed payment is refunded.");
        }

        var paid = settlement.Amount;
        if (!request.Amount.Currency.Equals(paid.Currency))
        {
            return new Refusal(ProblemCode.RefundAmountInvalid, $"The settlement was paid in {paid.Currency.Code}; a refund of it is too.");
        }

        // A card that paid and was replaced since: the refund goes to its replacement (docs/operations.md, "A card's life").
        var payee = await Issuance.CardReplacements.SuccessorAsync(connection, transaction, settlement.CardId).ConfigureAwait(false);
        var status = await connection.QuerySingleAsync<string>("SELECT status FROM cards WHERE card_id = @id", new { id = payee }, transaction).ConfigureAwait(false);
        if (status == "blocked")
        {
            return new Refusal(ProblemCode.RefundCardBlocked, $"Card {Ledger.MaskCard(payee)} that paid is blocked: a refund could never reach it. Refund the holder by other means.");
        }

        var before = await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM refunds WHERE settlement_id = @id",
            new { id = settlement.SettlementId }, transaction).ConfigureAwait(false);
        long total;
        try
        {
            total = checked(before + request.Amount.MinorUnits);
        }
        catch (OverflowException)
        {
            total = long.MaxValue;
        }

        if (total > paid.MinorUnits)
        {
            var left = new Money(paid.MinorUnits - before, paid.Currency);
            return new Refusal(ProblemCode.RefundExceedsPaid, $"Settlement {settlement.Id} paid {paid}, of which {new Money(before, paid.Currency)} is refunded: at most {left} is left to refund.");
        }

        var now = time.GetUtcNow();
        var refundedTotal = new Money(total, paid.Currency);
        var notice = Sign(new RefundNotice(request.RefundId, settlement.Id, settlement.OrderNo, settlement.StoreId, request.Amount, refundedTotal,
            RefundStates.Initial.ToText(), Ledger.MaskCard(settlement.CardId), now));
        await connection.ExecuteAsync(
            """
            INSERT INTO refunds (refund_id, settlement_id, store_id, card_id, amount_minor, currency, refunded_total_minor, reason,
                                 request_digest, request, state, notice, created_at)
            VALUES (@refundId, @settlementId, @storeId, @cardId, @amount, @currency, @total, @reason, @digest, @requestJws, @state, @notice, @now)
            """,
            new
            {
                refundId = request.RefundId.ToString(),
                settlementId = settlement.SettlementId,
                storeId = settlement.StoreId,
                cardId = settlement.CardId,
                amount = request.Amount.MinorUnits,
                currency = paid.Currency.Code,
                total,
                reason = request.Reason,
                digest,
                requestJws,
                state = RefundStates.Initial.ToText(),
                notice,
                now = StoredTime.Format(now),
            },
            transaction).ConfigureAwait(false);
        if (!await CardCredits.OweAsync(connection, transaction, payee, request.Amount, ValueUpdatePurposes.Refund, request.RefundId, Account.Store(settlement.StoreId), now)
            .ConfigureAwait(false))
        {
            // The refund id is new (its row was just written): a debt already owed under it is another movement's.
            throw new InvalidOperationException($"A credit for refund {request.RefundId} was owed before the refund was recorded.");
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        var cardMasked = Ledger.MaskCard(settlement.CardId);
        LogRefunded(request.RefundId, settlement.Id, settlement.StoreId, request.Amount, refundedTotal, cardMasked);
        metrics.EnteredRefund(RefundStates.Initial.ToText());
        return new RefundAnswer(notice);
    }

    // The notice of the refund's state now: an owed refund whose credit the card took becomes credited, with a new notice.
    private async Task<string> CurrentNoticeAsync(DbConnection connection, RefundRow row, CancellationToken cancellationToken)
    {
        if (row.State != RefundState.Owed
            || await CardCredits.StateOfAsync(connection, null, ValueUpdatePurposes.Refund, row.Id).ConfigureAwait(false) != RefundNoticeStates.Credited)
        {
            return row.Notice;
        }

        var now = time.GetUtcNow();
        var notice = Sign(row.NoticeFor(RefundState.Credited, now));
        await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        var moved = await RefundStates.Machine.RunAsync(write.Connection, write.Inner, RefundStates.Credit, row.Movement, now,
            set: "notice = @notice, credited_at = @at", parameters: new { notice, at = StoredTime.Format(now) }).ConfigureAwait(false);
        if (!moved)
        {
            // Another request marked it first: its notice stands.
            var current = await RefundRow.LoadAsync(write.Connection, write.Inner, row.Id).ConfigureAwait(false);
            return current!.Notice;
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        LogCredited(row.Id, row.SettlementGuid);
        metrics.EnteredRefund(RefundState.Credited.ToText());
        return notice;
    }

    // The store's proof: a fresh query for the refund's settlement, signed by the refund's store.
    private async Task<bool> IsStoresQueryAsync(RefundRow row, string storeQuery, CancellationToken cancellationToken)
    {
        var store = await stores.FindAsync(row.StoreId, cancellationToken).ConfigureAwait(false);
        var query = store is null ? null : SignedMessage.Verify<SettlementQuery>(storeQuery, store.Value.Keys, MessageTypes.SettlementQuery, out _);
        var now = time.GetUtcNow();
        return query is not null && query.SettlementId == row.SettlementGuid && query.StoreId == row.StoreId
            && query.IssuedAt > now - s_requestLifetime && query.IssuedAt < now + s_clockSkewMax;
    }

    private string Sign(RefundNotice notice) => SignedMessage.Sign(security.OperatorKey, notice, MessageTypes.RefundNotice);

    // What makes two requests the same refund: everything but the date, so that a store that signs
    // its request again to retry it gets the first answer.
    private static string DigestOf(RefundRequest request) =>
        Base64Url.EncodeToString(SHA256.HashData(ProtocolJson.ToUtf8(request with { IssuedAt = default })));

    private static long LockKey(Guid settlementId) =>
        BinaryPrimitives.ReadInt64BigEndian(SHA256.HashData(Encoding.UTF8.GetBytes($"openpurse-refunds:{settlementId}")));

    [LoggerMessage(Level = LogLevel.Information, Message = "Refund {RefundId} of settlement {SettlementId} by {StoreId}: {Amount} owed to card {CardMasked}, {RefundedTotal} refunded in all")]
    private partial void LogRefunded(Guid refundId, Guid settlementId, string storeId, Money amount, Money refundedTotal, string cardMasked);

    [LoggerMessage(Level = LogLevel.Information, Message = "Refund {RefundId} of settlement {SettlementId}: the card took it")]
    private partial void LogCredited(Guid refundId, Guid settlementId);
}

/// <summary>A refund as the registry holds it.</summary>
internal sealed record RefundRow
{
    public required string RefundId { get; init; }

    public required string SettlementId { get; init; }

    public required string OrderNo { get; init; }

    public required string StoreId { get; init; }

    public required string CardId { get; init; }

    public required long AmountMinor { get; init; }

    public required long RefundedTotalMinor { get; init; }

    public required string Currency { get; init; }

    public required string RequestDigest { get; init; }

    public required string Notice { get; init; }

    public required RefundState State { get; init; }

    public Guid Id => Guid.Parse(RefundId);

    public Guid SettlementGuid => Guid.Parse(SettlementId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    /// <summary>What a transition needs of the refund (its entries are the card credit's).</summary>
    public Movement Movement => new(RefundId, CardId, StoreId, Amount);

    private string StoredState
    {
        init => State = RefundStates.Machine.Parse(value);
    }

    /// <summary>The notice of this refund in <paramref name="state"/>, entered at <paramref name="at"/>.</summary>
    public RefundNotice NoticeFor(RefundState state, DateTimeOffset at) =>
        new(Id, SettlementGuid, OrderNo, StoreId, Amount, new Money(RefundedTotalMinor, Protocol.Currency.FromCode(Currency)), state.ToText(), Ledger.MaskCard(CardId), at);

    public static async Task<RefundRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, Guid refundId) =>
        await connection.QuerySingleOrDefaultAsync<RefundRow>(
            """
            SELECT r.refund_id AS RefundId, r.settlement_id AS SettlementId, s.order_no AS OrderNo, r.store_id AS StoreId, r.card_id AS CardId,
                   r.amount_minor AS AmountMinor, r.refunded_total_minor AS RefundedTotalMinor, r.currency AS Currency,
                   r.request_digest AS RequestDigest, r.notice AS Notice, r.state AS StoredState
            FROM refunds r JOIN settlements s ON s.settlement_id = r.settlement_id
            WHERE r.refund_id = @id
            """,
            new { id = refundId.ToString() }, transaction).ConfigureAwait(false);
}
