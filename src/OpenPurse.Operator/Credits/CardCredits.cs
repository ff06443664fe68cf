using System.Data.Common;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Credits;

/// <summary>
/// Value owed to a card that it takes at its next sync: a store's refund, a transfer from another
/// card, points a store awarded (docs/reliability.md, "Card credits"). Whoever decides it records it
/// with <see cref="OweAsync"/> in their own transaction; the card's next sync makes one CREDIT at a
/// time, oldest first (<see cref="IssueNextAsync"/>); the card's answer (<see cref="CompleteAsync"/>)
/// or its next greeting (<see cref="ResolveAsync"/>) moves the value to the card's account, once.
/// </summary>
internal sealed partial class CardCredits(ISecurityModule security, ILogger<CardCredits> logger)
{
    private static readonly HashSet<string> s_purposes = new([ValueUpdatePurposes.Refund, ValueUpdatePurposes.Transfer, ValueUpdatePurposes.Points, ValueUpdatePurposes.Replacement], StringComparer.Ordinal);

    /// <summary>
    /// Records that the operator owes the card <paramref name="cardDigits"/> <paramref name="amount"/>
    /// for <paramref name="purpose"/> from <paramref name="sourceId"/>, and posts
    /// <paramref name="from"/> → pending, in the caller's transaction. Owing the same source again is
    /// a no-op.
    /// </summary>
    /// <returns>True when recorded; false when this source already owes it (nothing written).</returns>
    /// <exception cref="ArgumentException">Not a purpose of value owed to a card, or an amount that is not positive.</exception>
    public static async Task<bool> OweAsync(DbConnection connection, DbTransaction transaction, string cardDigits, Money amount, string purpose, Guid sourceId, Account from, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (!s_purposes.Contains(purpose))
        {
            throw new ArgumentException($"'{purpose}' is not a purpose of value owed to a card.", nameof(purpose));
        }

        if (!amount.IsPositive)
        {
            throw new ArgumentException("A card is owed a positive amount.", nameof(amount));
        }

        var creditId = Guid.CreateVersion7(now).ToString();
        var stamp = StoredTime.Format(now);
        var inserted = await connection.ExecuteAsync(
            $"""
            INSERT INTO card_credits (credit_id, card_id, purpose, source_id, amount_minor, currency, state, created_at, updated_at)
            VALUES (@creditId, @cardDigits, @purpose, @sourceId, @amountMinor, @currency, '{CardCreditState.Owed.ToText()}', @stamp, @stamp)
            ON CONFLICT (purpose, source_id) DO NOTHING
            """,
            new { creditId, cardDigits, purpose, sourceId = sourceId.ToString(), amountMinor = amount.MinorUnits, currency = amount.Currency.Code, stamp },
            transaction).ConfigureAwait(false);
        if (inserted != 1)
        {
            return false;
        }

        await Journal.PostAsync(connection, transaction, creditId, now, new JournalEntry(from, Account.Pending, amount)).ConfigureAwait(false);
        return true;
    }

    /// <summary>The state of what <paramref name="sourceId"/> owes a card for <paramref name="purpose"/>: <c>owed</c>, <c>crediting</c>, <c>credited</c>, or null when it owes nothing.</summary>
    public static async Task<string?> StateOfAsync(DbConnection connection, DbTransaction? transaction, string purpose, Guid sourceId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return await connection.QuerySingleOrDefaultAsync<string?>(
            "SELECT state FROM card_credits WHERE purpose = @purpose AND source_id = @sourceId",
            new { purpose, sourceId = sourceId.ToString() }, transaction).ConfigureAwait(false);
    }

    /// <summary>
    /// The card's CREDIT still open, judged from its authentic greeting inside the caller's
    /// transaction (a sync, a purchase start, a top-up): ran → credited (pending → card), never ran →
    /// owed again, for the next sync.
    /// </summary>
    /// <returns>Null when nothing is left open; the credit's id when the greeting cannot tell (the card must not do anything else first).</returns>
    public static async Task<Guid?> ResolveAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var row = await CardCreditRow.LoadAsync(connection, transaction, $"card_id = @cardId AND state {CardCreditStates.In(CardCreditState.Crediting)}", new { cardId = greeting.CardId.Digits }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var evidence = row.CreditGreeting is { } stored && CardGreeting.TryParse(stored, out var creditGreeting)
            ? CardRecovery.Judge(greeting, row.ValueUpdateId!.Value, ValueKind.Credit, creditGreeting.Status.Counter, creditGreeting.SessionCounter)
            : CardEvidence.NeverRan;
        switch (evidence)
        {
            case CardEvidence.Ran when greeting.LastRecord!.Amount == row.Amount:
                return await CreditedAsync(connection, transaction, row, greeting.LastRecord, cardAnswer: null, now).ConfigureAwait(false)
                    ? null
                    : throw new ConcurrentChangeException();
            case CardEvidence.NeverRan:
                return await CardCreditStates.Machine.RunAsync(connection, transaction, CardCreditStates.NotRun, row.Movement, now,
                    "value_update_id = NULL, credit_greeting = NULL, credit_challenge = NULL, updated_at = @now", parameters: new { now = StoredTime.Format(now) }).ConfigureAwait(false)
                    ? null
                    : throw new ConcurrentChangeException();
            default:
                return row.Id;
        }
    }

    /// <summary>
    /// At a sync, after <see cref="ResolveAsync"/>: the card's oldest owed credit becomes a CREDIT for
    /// this session (<paramref name="session"/>, opened on <paramref name="greeting"/>), or null when
    /// the card is owed nothing.
    /// </summary>
    public async Task<CardCredit?> IssueNextAsync(DbConnection connection, DbTransaction transaction, CardHostSession session, CardGreeting greeting, byte[] hostChallenge, byte[] greetingBytes, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var row = await CardCreditRow.LoadAsync(connection, transaction,
            $"card_id = @cardId AND state {CardCreditStates.In(CardCreditState.Owed)} ORDER BY created_at, credit_id LIMIT 1", new { cardId = greeting.CardId.Digits }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var order = row.OrderFor(Guid.CreateVersion7(now));
        var credit = order.Make(security, session, greeting);
        if (!await CardCreditStates.Machine.RunAsync(connection, transaction, CardCreditStates.Issue, row.Movement, now,
                "value_update_id = @valueUpdateId, credit_greeting = @greetingBytes, credit_challenge = @hostChallenge, updated_at = @now",
                parameters: new { valueUpdateId = order.ValueUpdateId.ToString(), greetingBytes, hostChallenge, now = StoredTime.Format(now) }).ConfigureAwait(false))
        {
            throw new ConcurrentChangeException();
        }

        LogIssued(row.Id, row.Purpose, order.ValueUpdateId, row.Amount);
        return credit;
    }

    /// <summary>
    /// <c>POST /v1/cards/credits/{id}/completion</c> for a card credit: the card's answer to its CREDIT,
    /// in the caller's transaction. Null when <paramref name="valueUpdateId"/> is no card credit's.
    /// </summary>
    public async Task<Result<SettlementOutcome>?> CompleteAsync(DbConnection connection, DbTransaction transaction, Guid valueUpdateId, byte[] answerBytes, ResponseApdu answer, DateTimeOffset now)
    {
        var row = await CardCreditRow.LoadAsync(connection, transaction, "value_update_id = @id", new { id = valueUpdateId.ToString() }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var outcome = new SettlementOutcome(row.SourceId, CardCreditState.Credited.ToText());
        if (row.State == CardCreditState.Credited)
        {
            return row.CardAnswer is null || CryptographicOperations.FixedTimeEquals(row.CardAnswer, answerBytes)
                ? outcome
                : new Refusal(ProblemCode.SettlementReplayed, "The credit was taken; this card answer is not the one that reported it.");
        }

        if (!answer.IsOk)
        {
            // Nothing is written: the card's next greeting proves the CREDIT never ran, and the credit is owed again.
            return new Refusal(ProblemCode.CardRefused, $"The card answered {(ushort)answer.Status:X4} to the credit.");
        }

        var record = row.OrderFor(valueUpdateId).OpenAnswer(security, row.CreditGreeting, row.CreditChallenge, answer);
        if (record is null || !await CreditedAsync(connection, transaction, row, record, answerBytes, now).ConfigureAwait(false))
        {
            return new Refusal(ProblemCode.CardAnswerInvalid, "The card's answer does not verify for this credit.");
        }

        LogCredited(row.Id, row.Purpose, valueUpdateId);
        return outcome;
    }

    // crediting → credited: pending → card, and the card's counter and balance as it reported them.
    private static async Task<bool> CreditedAsync(DbConnection connection, DbTransaction transaction, CardCreditRow row, CardLogRecord record, byte[]? cardAnswer, DateTimeOffset now) =>
        record.Amount == row.Amount
        && await CardCreditStates.Machine.RunAsync(connection, transaction, CardCreditStates.Credit, row.Movement, now,
            "card_answer = @cardAnswer, updated_at = @now", parameters: new { cardAnswer, now = StoredTime.Format(now) }).ConfigureAwait(false)
        && await CardRecovery.FollowCardAsync(connection, transaction, row.CardId, record, CardLogSources.CardCredit, now).ConfigureAwait(false);

    [LoggerMessage(Level = LogLevel.Information, Message = "Card credit {CreditId} ({Purpose}): CREDIT {ValueUpdateId} of {Amount} made for the card's session")]
    private partial void LogIssued(Guid creditId, string purpose, Guid valueUpdateId, Money amount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Card credit {CreditId} ({Purpose}) credited: the card took CREDIT {ValueUpdateId}")]
    private partial void LogCredited(Guid creditId, string purpose, Guid valueUpdateId);
}

/// <summary>A card credit as stored.</summary>
internal sealed record CardCreditRow
{
    private const string Select =
        """
        SELECT credit_id AS CreditId, card_id AS CardId, purpose AS Purpose, source_id AS StoredSourceId, amount_minor AS AmountMinor, currency AS Currency,
               state AS StoredState, value_update_id AS StoredValueUpdateId, credit_greeting AS CreditGreeting, credit_challenge AS CreditChallenge, card_answer AS CardAnswer
        FROM card_credits WHERE
        """;

    public required string CreditId { get; init; }

    public required string CardId { get; init; }

    public required string Purpose { get; init; }

    public required Guid SourceId { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required CardCreditState State { get; init; }

    public Guid? ValueUpdateId { get; init; }

    public byte[]? CreditGreeting { get; init; }

    public byte[]? CreditChallenge { get; init; }

    public byte[]? CardAnswer { get; init; }

    public Guid Id => Guid.Parse(CreditId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    /// <summary>What the credit's journal entries need of it.</summary>
    public Movement Movement => new(CreditId, CardId, null, Amount);

    private string StoredSourceId
    {
        init => SourceId = Guid.Parse(value);
    }

    private string StoredState
    {
        init => State = CardCreditStates.Machine.Parse(value);
    }

    private string? StoredValueUpdateId
    {
        init => ValueUpdateId = value is null ? null : Guid.Parse(value);
    }

    /// <summary>The CREDIT with reference <paramref name="valueUpdateId"/> that gives the card this credit.</summary>
    public CreditOrder OrderFor(Guid valueUpdateId) => new(valueUpdateId, CreditOrder.DigestOf(Purpose, SourceId), Amount, Purpose, SourceId);

    public static async Task<CardCreditRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, string where, object parameters) =>
        await connection.QuerySingleOrDefaultAsync<CardCreditRow>(Select + " " + where, parameters, transaction).ConfigureAwait(false);
}
