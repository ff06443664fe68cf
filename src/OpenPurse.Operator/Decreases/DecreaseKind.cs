using System.Data.Common;
using Dapper;
using OpenPurse.Hosting;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Decreases;

/// <summary>
/// What differs between a transfer and a cash-out, for the code they share (<see cref="ValueDecreaseService"/>):
/// the table, the purpose, how the payee is shown, and the two transitions out of <c>debiting</c>,
/// each one of <see cref="TransferStates"/> or <see cref="CashOutStates"/>.
/// </summary>
internal sealed class DecreaseKind
{
    private const string Answered = "card_answer = @cardAnswer, balance_after_minor = @balanceAfter, updated_at = @now";

    private DecreaseKind()
    {
    }

    /// <summary>A transfer to another card: debited, the value is owed to the payee card (card → pending).</summary>
    public static DecreaseKind Transfer { get; } = new()
    {
        Purpose = ValueDecreasePurposes.Transfer,
        Name = "transfer",
        Table = "transfers",
        Key = "transfer_id",
        PayeeColumn = "payee_card_id",
        Conflict = ProblemCode.TransferConflict,
        NotFound = ProblemCode.TransferNotFound,
        Debiting = TransferState.Debiting.ToText(),
        Abandoned = TransferState.Abandoned.ToText(),
        MaskPayee = payee => CardId.TryParse(payee, out var card) ? card.Masked : "••••",
        DebitedAsync = async (connection, transaction, row, record, cardAnswer, now) =>
            await TransferStates.Machine.RunAsync(connection, transaction, TransferStates.Debit, row.Movement, now, Answered,
                parameters: new { cardAnswer, balanceAfter = record.BalanceAfter.MinorUnits, now = StoredTime.Format(now) }).ConfigureAwait(false)
            && await CardCredits.OweAsync(connection, transaction, row.Payee, row.Amount, ValueUpdatePurposes.Transfer, row.Id, Account.Card(row.CardId), now).ConfigureAwait(false),
        AbandonAsync = (connection, transaction, row, now) =>
            TransferStates.Machine.RunAsync(connection, transaction, TransferStates.Abandon, row.Movement, now, "updated_at = @now", parameters: new { now = StoredTime.Format(now) }),
    };

    /// <summary>A cash-out to a bank account: debited, the value is owed to the bank account (card → payouts) until cleared.</summary>
    public static DecreaseKind CashOut { get; } = new()
    {
        Purpose = ValueDecreasePurposes.CashOut,
        Name = "cash-out",
        Table = "cashouts",
        Key = "cashout_id",
        PayeeColumn = "iban",
        Conflict = ProblemCode.CashOutConflict,
        NotFound = ProblemCode.CashOutNotFound,
        Debiting = CashOutState.Debiting.ToText(),
        Abandoned = CashOutState.Abandoned.ToText(),
        MaskPayee = Iban.Mask,
        DebitedAsync = (connection, transaction, row, record, cardAnswer, now) =>
            CashOutStates.Machine.RunAsync(connection, transaction, CashOutStates.Debit, row.Movement, now, Answered + ", debited_at = @now",
                parameters: new { cardAnswer, balanceAfter = record.BalanceAfter.MinorUnits, now = StoredTime.Format(now) }),
        AbandonAsync = (connection, transaction, row, now) =>
            CashOutStates.Machine.RunAsync(connection, transaction, CashOutStates.Abandon, row.Movement, now, "updated_at = @now", parameters: new { now = StoredTime.Format(now) }),
    };

    /// <summary>Both kinds, in the order a greeting resolves them.</summary>
    public static IReadOnlyList<DecreaseKind> All { get; } = [Transfer, CashOut];

    /// <summary>One of <see cref="ValueDecreasePurposes"/>.</summary>
    public required string Purpose { get; init; }

    /// <summary>For messages: "transfer", "cash-out".</summary>
    public required string Name { get; init; }

    public required string Table { get; init; }

    public required string Key { get; init; }

    /// <summary>The column of the full payee: the payee card's digits, or the IBAN.</summary>
    public required string PayeeColumn { get; init; }

    public required ProblemCode Conflict { get; init; }

    public required ProblemCode NotFound { get; init; }

    /// <summary>The stored text of the state in which the DEBIT is open.</summary>
    public required string Debiting { get; init; }

    /// <summary>The stored text of the state in which the DEBIT provably never ran.</summary>
    public required string Abandoned { get; init; }

    /// <summary>The payee as it may be shown or logged.</summary>
    public required Func<string, string> MaskPayee { get; init; }

    /// <summary>debiting → debited and its effect, for what the card's log says it did; false when another transaction changed the row first.</summary>
    public required Func<DbConnection, DbTransaction, DecreaseRow, CardLogRecord, byte[]?, DateTimeOffset, Task<bool>> DebitedAsync { get; init; }

    /// <summary>debiting → abandoned; false when another transaction changed the row first.</summary>
    public required Func<DbConnection, DbTransaction, DecreaseRow, DateTimeOffset, Task<bool>> AbandonAsync { get; init; }

    /// <summary>The digest the DEBIT's order carries for this row (<see cref="ValueDecreasePurposes.OrderDigest"/>).</summary>
    public byte[] OrderDigest(DecreaseRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return ValueDecreasePurposes.OrderDigest(Purpose, row.Id, row.Amount, row.Payee);
    }

    /// <summary>Reads one row.</summary>
    public Task<DecreaseRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, Guid id) =>
        LoadAsync(connection, transaction, $"{Key} = @id", new { id = id.ToString() });

    /// <summary>Reads the row that matches <paramref name="where"/>.</summary>
    public async Task<DecreaseRow?> LoadAsync(DbConnection connection, DbTransaction? transaction, string where, object parameters)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var row = await connection.QuerySingleOrDefaultAsync<DecreaseRow>(
            $"""
            SELECT {Key} AS DecreaseId, card_id AS CardId, {PayeeColumn} AS Payee, amount_minor AS AmountMinor, currency AS Currency,
                   request_digest AS RequestDigest, state AS State, debit_greeting AS DebitGreeting, debit_challenge AS DebitChallenge,
                   response AS Response, card_answer AS CardAnswer, balance_after_minor AS BalanceAfterMinor
            FROM {Table} WHERE {where}
            """,
            parameters, transaction).ConfigureAwait(false);
        return row is null ? null : row with { Kind = this };
    }

    /// <summary>
    /// The card's DEBIT of this kind still open, judged from its authentic greeting in the caller's
    /// transaction: ran (its log's newest record is this DEBIT, of this amount and digest) → debited
    /// with its effect, never ran → abandoned.
    /// </summary>
    /// <returns>The row and whether it is still open (the greeting proves nothing yet), or null when the card has none open.</returns>
    /// <exception cref="ConcurrentChangeException">Another transaction resolved it between the read and the write.</exception>
    public async Task<(DecreaseRow Row, bool StillOpen)?> ResolveAsync(DbConnection connection, DbTransaction transaction, CardGreeting greeting, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(greeting);
        var row = await LoadAsync(connection, transaction, $"card_id = @cardId AND state = '{Debiting}'", new { cardId = greeting.CardId.Digits }).ConfigureAwait(false);
        if (row is null)
        {
            return null;
        }

        var evidence = CardGreeting.TryParse(row.DebitGreeting, out var debitGreeting)
            ? CardRecovery.Judge(greeting, row.Id, ValueKind.Debit, debitGreeting.Status.Counter, debitGreeting.SessionCounter)
            : CardEvidence.NeverRan;
        switch (evidence)
        {
            case CardEvidence.Ran when greeting.LastRecord!.Amount == row.Amount && greeting.LastRecord.Digest.Span.SequenceEqual(OrderDigest(row)):
                return await DebitedAsync(connection, transaction, row, greeting.LastRecord, null, now).ConfigureAwait(false)
                    && await CardRecovery.FollowCardAsync(connection, transaction, row.CardId, greeting.LastRecord, Name, now).ConfigureAwait(false)
                    ? (row, false)
                    : throw new ConcurrentChangeException();
            case CardEvidence.NeverRan:
                return await AbandonAsync(connection, transaction, row, now).ConfigureAwait(false) ? (row, false) : throw new ConcurrentChangeException();
            default:
                return (row, true);
        }
    }
}

/// <summary>A transfer or a cash-out as stored, read through the columns both tables have. The payee is in full: never for a log.</summary>
internal sealed record DecreaseRow
{
    public required string DecreaseId { get; init; }

    public required string CardId { get; init; }

    /// <summary>The payee card's digits, or the IBAN.</summary>
    public required string Payee { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required string RequestDigest { get; init; }

    /// <summary>The stored state, one of its kind's machine.</summary>
    public required string State { get; init; }

    public required byte[] DebitGreeting { get; init; }

    public required byte[] DebitChallenge { get; init; }

    /// <summary>The <see cref="CardDebit"/> made, as JSON.</summary>
    public required string Response { get; init; }

    public byte[]? CardAnswer { get; init; }

    public long? BalanceAfterMinor { get; init; }

    public DecreaseKind Kind { get; init; } = DecreaseKind.Transfer;

    public Guid Id => Guid.Parse(DecreaseId);

    public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

    public Money? BalanceAfter => BalanceAfterMinor is { } after ? new Money(after, Amount.Currency) : null;

    /// <summary>What the row's journal entries need of it.</summary>
    public Movement Movement => new(DecreaseId, CardId, null, Amount);

    public string MaskedPayee => Kind.MaskPayee(Payee);
}
