using System.Data.Common;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Settlement;

/// <summary>What a card's authentic greeting proves about an order the operator gave it.</summary>
internal enum CardEvidence
{
    /// <summary>The card's newest log record is the order's: it ran.</summary>
    Ran,

    /// <summary>The card opened a later session at the order's counter: it did not run and never can.</summary>
    NeverRan,

    /// <summary>Neither (an older greeting arriving late, or the session the order belongs to is still open).</summary>
    Unknown,
}

/// <summary>
/// Resolves what a card left unfinished from its greeting — the counter, the session counter and
/// the newest log record, all under the session's R-MAC — and posts the outcome. Each transition
/// is one of <see cref="SettlementStates"/>, run inside the caller's transaction as a conditional
/// update (<c>WHERE state IN …</c>), so two nodes resolving the same settlement cannot both post it.
/// See docs/reliability.md.
/// </summary>
internal sealed partial class CardRecovery(ISecurityModule security, OperatorMetrics metrics, ILogger<CardRecovery> logger)
{
    /// <summary>What the greeting proves about an order with this reference, made for this counter in this session.</summary>
    public static CardEvidence Judge(CardGreeting greeting, Guid reference, ValueKind kind, uint expectedCounter, uint orderSession)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        if (greeting.LastRecord is { } last && last.TransactionRef == reference && last.Kind == kind && last.Counter == expectedCounter + 1
            && greeting.Status.Counter == last.Counter)
        {
            return CardEvidence.Ran;
        }

        // Every INITIALIZE UPDATE ends the card's previous session, and an order acts only in its
        // own session and only at its counter: a later session at that counter proves it never ran.
        return greeting.Status.Counter == expectedCounter && greeting.SessionCounter > orderSession
            ? CardEvidence.NeverRan
            : CardEvidence.Unknown;
    }

    /// <summary>A card's answer as a wallet reports it (base64 of the response APDU), or null when it is not one.</summary>
    public static (byte[] Bytes, Protocol.Apdu.ResponseApdu Answer)? ParseCardAnswer(string? base64)
    {
        try
        {
            var bytes = Convert.FromBase64String(base64 ?? "");
            return (bytes, Protocol.Apdu.ResponseApdu.Parse(bytes));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>The card's one unresolved settlement, if any.</summary>
    public static Task<SettlementRow?> FindUnresolvedAsync(DbConnection connection, DbTransaction transaction, CardId cardId) =>
        SettlementRow.LoadAsync(connection, transaction, $"s.card_id = @cardId AND s.state {SettlementStates.In(SettlementStates.Unresolved)}", new { cardId = cardId.Digits });

    /// <summary>
    /// Resolves <paramref name="row"/> from <paramref name="greeting"/> (authentic: its status MAC
    /// was checked): an authorized settlement the card ran completes, one it never ran is voided;
    /// an expired one it ran is owed back to the card (reversing), one it never ran is voided.
    /// </summary>
    /// <returns>The new state, or null when the greeting proves nothing (the settlement stays as it is).</returns>
    public async Task<SettlementState?> ResolveAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.State is not (SettlementState.Authorized or SettlementState.Expired))
        {
            return null;
        }

        var evidence = Judge(greeting, row.Id, ValueKind.Debit, (uint)row.ExpectedCounter, row.Session);
        var (state, moved) = evidence switch
        {
            CardEvidence.Ran when greeting.LastRecord!.Amount == row.Amount && greeting.LastRecord.Digest.Span.SequenceEqual(row.BillDigestBytes) => row.State == SettlementState.Authorized
                ? await CompleteAsync(connection, transaction, row, greeting.LastRecord, cardAnswer: null, ResolvedBy.CardLog, now).ConfigureAwait(false) is { } done ? (done.State, true) : (SettlementState.Completed, false)
                : (SettlementState.Reversing, await OweBackAsync(connection, transaction, row, greeting.LastRecord, now).ConfigureAwait(false)),
            CardEvidence.NeverRan => (SettlementState.Voided, await VoidAsync(connection, transaction, row, VoidReasons.NotRun, ResolvedBy.LaterSession, now).ConfigureAwait(false)),
            _ => ((SettlementState?)null, true),
        };

        // The greeting proved something, but another node changed the settlement between our read
        // and our write: the caller runs its transaction again on what is committed now.
        return moved ? state : throw new ConcurrentChangeException();
    }

    /// <summary>
    /// Judges from the card's authentic greeting, in the caller's transaction, every order the card
    /// may have left open — the issuing station's load, its settlement, a top-up's CREDIT, a
    /// transfer's or cash-out's DEBIT, a card credit's CREDIT — and runs what the greeting proves, each
    /// once. Each order is judged on its own: a greeting's newest record is at most one order's. What
    /// the greeting proved stays proved: the caller commits even when it then refuses with
    /// <see cref="LeftOpen.Busy"/>.
    /// </summary>
    public async Task<LeftOpen> ResolveLeftOpenAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        var loadPending = !await ResolveLoadAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        var topUp = await TopUps.TopUpResolution.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        var decrease = await Decreases.ValueDecreaseService.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        var credit = await Credits.CardCredits.ResolveAsync(connection, transaction, greeting, now).ConfigureAwait(false);
        var settlement = await FindUnresolvedAsync(connection, transaction, greeting.CardId).ConfigureAwait(false);
        var resolved = settlement is null ? null : await ResolveAsync(connection, transaction, settlement, greeting, now).ConfigureAwait(false);
        // The newest record is the card's own word under the session's MAC, whatever order it was:
        // the card log keeps it (a no-op when a resolution above kept it with its own source).
        if (greeting.LastRecord is { } last)
        {
            await CardLog.KeepAsync(connection, transaction, greeting.CardId.Digits, last, CardLogSources.Greeting, now).ConfigureAwait(false);
        }

        if (settlement is null)
        {
            return new LeftOpen(loadPending, null, null, topUp, decrease, credit);
        }

        if (resolved is not { } state)
        {
            return new LeftOpen(loadPending, settlement, null, topUp, decrease, credit);
        }

        // The log names states by their stored text, as the API and the metrics do.
        var (from, to) = (settlement.State.ToText(), state.ToText());
        LogResolved(settlement.Id, from, to);
        metrics.Entered(state);
        var after = await SettlementRow.LoadAsync(connection, settlement.Id, transaction).ConfigureAwait(false);
        return new LeftOpen(loadPending, after, settlement.State, topUp, decrease, credit);
    }

    /// <summary>
    /// Resolves the card's pending load (an issuing station that died between the card's CREDIT and
    /// its commit): posted when the card's newest record is that CREDIT, failed when a later session
    /// proves it never ran. True when no load is pending any more.
    /// </summary>
    public static async Task<bool> ResolveLoadAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var pending = await connection.QuerySingleOrDefaultAsync<(string LoadId, long AmountMinor, string Currency, long ExpectedCounter, long SessionCounter)?>(
            $"SELECT load_id, amount_minor, currency, expected_counter, session_counter FROM card_loads WHERE card_id = @id AND state {CardLoadStates.Machine.In(CardLoadState.Pending)}",
            new { id = greeting.CardId.Digits }, transaction).ConfigureAwait(false);
        if (pending is not { } load)
        {
            return true;
        }

        switch (Judge(greeting, Guid.Parse(load.LoadId), ValueKind.Credit, (uint)load.ExpectedCounter, (uint)load.SessionCounter))
        {
            case CardEvidence.Ran:
                await PostLoadAsync(connection, transaction, load.LoadId, greeting.CardId.Digits, greeting.LastRecord!, now).ConfigureAwait(false);
                return true;
            case CardEvidence.NeverRan:
                // The amount is the load's own: a failed load posts nothing.
                await CardLoadStates.Machine.RunAsync(connection, transaction, CardLoadStates.Fail,
                    new Movement(load.LoadId, greeting.CardId.Digits, null, new Money(load.AmountMinor, Currency.FromCode(load.Currency))), now).ConfigureAwait(false);
                return true;
            default:
                return false;
        }
    }

    /// <summary>pending → loaded (<see cref="CardLoadStates.Post"/>): the card took the CREDIT; the value issued is on the card's account. False when it was posted before.</summary>
    public static async Task<bool> PostLoadAsync(DbConnection connection, DbTransaction transaction, string loadId, string cardId, CardLogRecord record, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(record);
        // What the card's log says it took is what is posted.
        return await CardLoadStates.Machine.RunAsync(connection, transaction, CardLoadStates.Post, new Movement(loadId, cardId, null, record.Amount), now).ConfigureAwait(false)
            && await FollowCardAsync(connection, transaction, cardId, record, CardLogSources.Load, now).ConfigureAwait(false);
    }

    /// <summary>authorized → completed (<see cref="SettlementStates.Complete"/>): the card paid; the store is owed the amount.</summary>
    /// <returns>The settlement as completed, with its ACN; null when another node changed it first.</returns>
    public async Task<SettlementRow?> CompleteAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, CardLogRecord record, byte[]? cardAnswer, string resolvedBy, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(record);
        if (await IsBlockedAsync(connection, transaction, row.CardId).ConfigureAwait(false))
        {
            // Blocked before the operator learned of the DEBIT: no settlement of a blocked card
            // completes. The debit is owed back to the holder (a replacement card takes it), the
            // store is told the order is not paid.
            var notice = SignedMessage.Sign(security.OperatorKey,
                new VoidNotice(row.Id, row.OrderNo, row.StoreId, row.MallId, row.Amount, row.BillDigest, VoidReasons.Returned, now), MessageTypes.VoidNotice);
            var returned = await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.ReturnBlocked, row.Movement, now,
                set: "resolved_by = @resolvedBy, card_answer = @cardAnswer, void_notice = @notice", parameters: new { resolvedBy, cardAnswer, notice }).ConfigureAwait(false);
            return returned && await FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.Settlement, now).ConfigureAwait(false)
                ? row with { State = SettlementState.Reversing, CardAnswer = cardAnswer, VoidNotice = notice }
                : null;
        }

        var acn = new CompletionNotice(row.Id, row.OrderNo, row.StoreId, row.MallId, row.Amount, row.BillDigest, CardId.Parse(row.CardId).Masked, record.Counter, now);
        var acnJws = SignedMessage.Sign(security.OperatorKey, acn, MessageTypes.CompletionNotice);
        var moved = await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.Complete, row.Movement, now,
            set: "completed_at = @now, resolved_by = @resolvedBy, card_answer = @cardAnswer, completion_notice = @acnJws",
            parameters: new { now = StoredTime.Format(now), resolvedBy, cardAnswer, acnJws }).ConfigureAwait(false);
        return moved && await FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.Settlement, now).ConfigureAwait(false)
            ? row with { State = SettlementState.Completed, CardAnswer = cardAnswer, CompletionNotice = acnJws }
            : null;
    }

    // The card's status, read after taking its row: a block committing meanwhile is waited for and
    // seen (PostgreSQL locks the row; SQLite has one writer), so a completion and a block are in one order.
    private static async Task<bool> IsBlockedAsync(DbConnection connection, DbTransaction transaction, string cardId)
    {
        await connection.ExecuteAsync("UPDATE cards SET counter = counter WHERE card_id = @cardId", new { cardId }, transaction).ConfigureAwait(false);
        var status = await connection.ExecuteScalarAsync<string?>("SELECT status FROM cards WHERE card_id = @cardId", new { cardId }, transaction).ConfigureAwait(false);
        return status == CardStates.Machine.Text(CardState.Blocked);
    }

    /// <summary>
    /// authorized → expired (<see cref="SettlementStates.Expire"/>), or authorized or expired → voided
    /// (<see cref="SettlementStates.Void"/>): the store is told it is not paid. False when another node changed the settlement first.
    /// </summary>
    public async Task<bool> VoidAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, string reason, string resolvedBy, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        var notice = SignedMessage.Sign(security.OperatorKey,
            new VoidNotice(row.Id, row.OrderNo, row.StoreId, row.MallId, row.Amount, row.BillDigest, reason, now), MessageTypes.VoidNotice);
        // An expired settlement the card never ran becomes voided too; the store was told already (same outcome: not paid).
        return await SettlementStates.Machine.RunAsync(connection, transaction, reason == VoidReasons.Expired ? SettlementStates.Expire : SettlementStates.Void, row.Movement, now,
            set: "resolved_by = @resolvedBy, void_notice = COALESCE(void_notice, @notice)",
            parameters: new { resolvedBy, notice }).ConfigureAwait(false);
    }

    /// <summary>expired → reversing (<see cref="SettlementStates.OweBack"/>): the card ran the debit after all; its value is owed back to it until credited.</summary>
    public static async Task<bool> OweBackAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, CardLogRecord record, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(record);
        return await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.OweBack, row.Movement, now,
                set: "resolved_by = @resolvedBy", parameters: new { resolvedBy = ResolvedBy.CardLog }).ConfigureAwait(false)
            && await FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.Settlement, now).ConfigureAwait(false);
    }

    /// <summary>reversing → reversed (<see cref="SettlementStates.Reverse"/>): the card took the CREDIT that returns the debit.</summary>
    public static async Task<bool> ReversedAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, CardLogRecord record, byte[]? cardAnswer, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(record);
        return await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.Reverse, row.Movement, now,
                set: "reversal_answer = @cardAnswer, completed_at = @now", parameters: new { cardAnswer, now = StoredTime.Format(now) }).ConfigureAwait(false)
            && await FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.Reversal, now).ConfigureAwait(false);
    }

    /// <summary>
    /// Records that the store did not acknowledge the outcome it was told, and when to tell it
    /// again: after the sweep interval, doubling with each attempt up to <see cref="OperatorOptions.StoreRetellIntervalMax"/>.
    /// A store that refused an ACN <see cref="OperatorOptions.StoreRefusalsMax"/> times, or failed to take
    /// any outcome for <see cref="OperatorOptions.StoreFailingMax"/>, is not told again: the completed
    /// settlement becomes disputed (<see cref="SettlementStates.Dispute"/>; the amount stays the store's until the operator
    /// decides), a void notice is given up (it moves no money).
    /// </summary>
    /// <returns>The settlement's new state when it changed, else null.</returns>
    public static async Task<SettlementState?> RecordUntoldAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, StoreAnswer answer, OperatorOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(options);
        var attempts = checked(row.StoreAttempts + 1);
        var refusals = answer.Kind == StoreAnswerKind.Refused ? checked(row.StoreRefusals + 1) : row.StoreRefusals;
        var failingSince = row.StoreFailingSince is { } since ? StoredTime.Parse(since) : now;
        var givingUp = refusals >= options.StoreRefusalsMax || now - failingSince >= options.StoreFailingMax;
        const string Telling =
            "store_attempts = @attempts, store_refusals = @refusals, store_failing_since = @failingSince, store_next_at = @nextAt, store_given_up_at = @givenUpAt, store_answer = @answer";
        const string Untold = "store_told_at IS NULL AND store_given_up_at IS NULL AND store_attempts = @before";
        var telling = new
        {
            before = row.StoreAttempts,
            attempts,
            refusals,
            failingSince = StoredTime.Format(failingSince),
            nextAt = StoredTime.Format(now + RetellDelay(attempts, options)),
            givenUpAt = givingUp ? StoredTime.Format(now) : null,
            answer = answer.Summary,
        };
        if (givingUp && SettlementStates.Dispute.AllowedFrom(row.State))
        {
            var disputed = await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.Dispute, row.Movement, now, Telling, Untold, telling).ConfigureAwait(false);
            return disputed ? SettlementState.Disputed : null;
        }

        // Not a transition: the settlement stays in its state, and only if it still is in it.
        var parameters = new DynamicParameters(telling);
        parameters.AddDynamicParams(new { id = row.SettlementId, from = row.State.ToText() });
        await connection.ExecuteAsync($"UPDATE settlements SET {Telling} WHERE settlement_id = @id AND state = @from AND {Untold}", parameters, transaction).ConfigureAwait(false);
        return null;
    }

    /// <summary>The wait before the next telling after <paramref name="attempts"/> unacknowledged ones: the sweep interval, doubled each time, capped.</summary>
    public static TimeSpan RetellDelay(long attempts, OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var cap = options.StoreRetellIntervalMax;
        var delay = options.SweepInterval > TimeSpan.Zero ? options.SweepInterval : OperatorOptions.DefaultSweepInterval;
        // Doubling past the cap stops early, so neither the shift nor the ticks can overflow.
        for (var i = 1; i < attempts && delay < cap; i++)
        {
            delay += delay;
        }

        return delay < cap ? delay : cap;
    }

    /// <summary>
    /// disputed → reversing (<see cref="SettlementStates.ReturnDisputed"/>), decided by the operator: the amount goes back to the card instead of
    /// the store (store → reversals now; the card's next sync credits it, as for an expired
    /// settlement), and the store is told with a void notice that the order is not paid.
    /// </summary>
    /// <returns>False when the settlement is not disputed (any more).</returns>
    public async Task<bool> ReturnDisputedAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        var notice = SignedMessage.Sign(security.OperatorKey,
            new VoidNotice(row.Id, row.OrderNo, row.StoreId, row.MallId, row.Amount, row.BillDigest, VoidReasons.Returned, now), MessageTypes.VoidNotice);
        return await SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.ReturnDisputed, row.Movement, now,
            set: $"resolved_by = @resolvedBy, void_notice = @notice, {ResetStoreTelling}", parameters: new { resolvedBy = ResolvedBy.Operator, notice }).ConfigureAwait(false);
    }

    /// <summary>
    /// disputed → completed (<see cref="SettlementStates.RetellDisputed"/>), decided by the operator: the store is told its ACN again from the next
    /// sweep, with a fresh count of attempts. Nothing is posted: the amount never left the store's account.
    /// </summary>
    /// <returns>False when the settlement is not disputed (any more).</returns>
    public static Task<bool> RetellDisputedAsync(DbConnection connection, DbTransaction transaction, SettlementRow row, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(row);
        return SettlementStates.Machine.RunAsync(connection, transaction, SettlementStates.RetellDisputed, row.Movement, now, set: ResetStoreTelling);
    }

    private const string ResetStoreTelling =
        "store_told_at = NULL, store_attempts = 0, store_refusals = 0, store_failing_since = NULL, store_next_at = NULL, store_given_up_at = NULL";

    // The operator's shadow follows the card: its counter only grows (one statement for both
    // engines, where MAX and GREATEST differ), and the purse holds what the record says it holds after.
    // The record itself goes to the card log, with the source that delivered it (CardLogSources).
    // True, to follow a transition that took place.
    internal static async Task<bool> FollowCardAsync(DbConnection connection, DbTransaction transaction, string cardId, CardLogRecord record, string source, DateTimeOffset now)
    {
        await CardLog.KeepAsync(connection, transaction, cardId, record, source, now).ConfigureAwait(false);
        await connection.ExecuteAsync(
            "UPDATE cards SET counter = @counter WHERE card_id = @cardId AND counter < @counter",
            new { counter = (long)record.Counter, cardId }, transaction).ConfigureAwait(false);
        await connection.ExecuteAsync(
            """
            INSERT INTO card_purses (card_id, currency, balance_minor) VALUES (@cardId, @currency, @balance)
            ON CONFLICT (card_id, currency) DO UPDATE SET balance_minor = excluded.balance_minor
            """,
            new { cardId, currency = record.BalanceAfter.Currency.Code, balance = record.BalanceAfter.MinorUnits }, transaction).ConfigureAwait(false);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId}: the card's greeting took it from {From} to {To}")]
    private partial void LogResolved(Guid settlementId, string from, string to);
}

/// <summary>
/// A conditional update found the row changed by a concurrent transaction (PostgreSQL at READ
/// COMMITTED): the work is run again, so that racing requests are answered as if one after the other.
/// </summary>
internal sealed class ConcurrentChangeException() : Exception("A concurrent transaction changed the row first.");

/// <summary>What resolved a settlement, as recorded in <c>resolved_by</c>.</summary>
internal static class ResolvedBy
{
    /// <summary>An operator's decision on a disputed settlement (the admin API).</summary>
    public const string Operator = "operator";

    public const string CompletionNotice = "completion_notice";
    public const string CardLog = "card_log";
    public const string LaterSession = "later_session";
    public const string Sweeper = "sweeper";
}

/// <summary>A settlement as stored, with what rebuilding its card session needs.</summary>
internal sealed record SettlementRow
{
    private const string Select =
        """
        SELECT s.settlement_id AS SettlementId, s.order_no AS OrderNo, s.store_id AS StoreId, st.mall_id AS MallId, s.bill AS Bill,
               s.bill_digest AS BillDigest, s.amount_minor AS AmountMinor, s.currency AS Currency, s.card_id AS CardId,
               s.card_greeting AS CardGreeting, s.expected_counter AS ExpectedCounter, s.state AS StoredState,
               s.card_answer AS CardAnswer, s.completion_notice AS CompletionNotice, s.receipt AS Receipt, s.void_notice AS VoidNotice,
               s.start_response AS StartResponse, s.reversal_id AS ReversalId, s.reversal_greeting AS ReversalGreeting,
               s.reversal_challenge AS ReversalChallenge, s.reversal_answer AS ReversalAnswer,
               s.store_attempts AS StoreAttempts, s.store_refusals AS StoreRefusals, s.store_failing_since AS StoreFailingSince,
               s.store_answer AS StoreAnswer
        FROM settlements s JOIN stores st ON st.store_id = s.store_id
        WHERE
        """;

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

    public required SettlementState State { get; init; }

    public byte[]? CardAnswer { get; init; }

    public string? CompletionNotice { get; init; }

    public string? Receipt { get; init; }

    public string? VoidNotice { get; init; }

    public string? StartResponse { get; init; }

    public string? ReversalId { get; init; }

    public byte[]? ReversalGreeting { get; init; }

    public byte[]? ReversalChallenge { get; init; }

    public byte[]? ReversalAnswer { get; init; }

    /// <summary>Tellings of the outcome the store did not acknowledge.</summary>
    public long StoreAttempts { get; init; }

    /// <summary>Of those, the definitive refusals.</summary>
    public long StoreRefusals { get; init; }

    public string? StoreFailingSince { get; init; }

    /// <summary>The store's last answer, e.g. <c>HTTP 422 completion.mismatch</c>.</summary>
    public string? StoreAnswer { get; init; }

    public Guid Id => Guid.Parse(SettlementId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    /// <summary>What the settlement's journal entries need of it.</summary>
    public Movement Movement => new(SettlementId, CardId, StoreId, Amount);

    public byte[] BillDigestBytes => System.Buffers.Text.Base64Url.DecodeFromChars(BillDigest);

    /// <summary>The card session the debit was made for (the greeting was parsed when it was stored).</summary>
    public uint Session => Protocol.Purse.CardGreeting.TryParse(CardGreeting, out var greeting) ? greeting.SessionCounter : uint.MaxValue;

    /// <summary>The stored text of <see cref="State"/>: the registry's column, read through <see cref="SettlementStates"/>.</summary>
    private string StoredState
    {
        init => State = SettlementStates.Parse(value);
    }

    public static Task<SettlementRow?> LoadAsync(DbConnection connection, Guid settlementId, DbTransaction? transaction = null) =>
        LoadAsync(connection, transaction, "s.settlement_id = @id", new { id = settlementId.ToString() });

    public static async Task<SettlementRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, string where, object parameters) =>
        await connection.QuerySingleOrDefaultAsync<SettlementRow>(Select + " " + where, parameters, transaction).ConfigureAwait(false);

    public static async Task<IReadOnlyList<SettlementRow>> ListAsync(DbConnection connection, string where, object parameters) =>
        [.. await connection.QueryAsync<SettlementRow>(Select + " " + where, parameters).ConfigureAwait(false)];
}
