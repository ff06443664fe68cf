using System.Buffers.Text;
using System.Data.Common;
using Dapper;
using OpenPurse.Protocol.Purse;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The operator's card log: the records cards wrote for their value changes, as they reached the
/// operator authenticated — in a card answer unwrapped under the session's MAC, or as the newest
/// record of an authentic greeting. Kept in the transaction of the state change the record proved,
/// so a record is in the log exactly when what it proved is in the books. The careful examination
/// (<see cref="Examination"/>) checks each record against its transaction.
/// </summary>
internal static class CardLog
{
    /// <summary>
    /// Keeps <paramref name="record"/> of card <paramref name="cardId"/>, in the caller's transaction.
    /// The same record again is a no-op; another record at the same counter is kept aside as a
    /// conflict (the first one stays), for the examination to list. The caller vouches that the
    /// record came authenticated from the card; <paramref name="source"/> names the flow that
    /// delivered it (<see cref="CardLogSources"/>).
    /// </summary>
    public static async Task KeepAsync(DbConnection connection, DbTransaction transaction, string cardId, CardLogRecord record, string source, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(record);
        var row = CardLogRow.Of(cardId, record, source, now);
        var inserted = await connection.ExecuteAsync(
            // A card the registry does not know (only an authentic greeting can name one) has no log here.
            $"""
            INSERT INTO card_log ({CardLogRow.Columns}) SELECT {CardLogRow.Values} WHERE EXISTS (SELECT 1 FROM cards WHERE card_id = @CardId)
            ON CONFLICT (card_id, counter) DO NOTHING
            """,
            row, transaction).ConfigureAwait(false);
        if (inserted == 1)
        {
            return;
        }

        var kept = await connection.QuerySingleOrDefaultAsync<CardLogRow>(
            $"SELECT {CardLogRow.Select} FROM card_log WHERE card_id = @CardId AND counter = @Counter", row, transaction).ConfigureAwait(false);
        if (kept is null || kept.SameRecord(row))
        {
            return;
        }

        // Never over the kept one: which of two authenticated records is right is for a person to find out.
        await connection.ExecuteAsync(
            $"INSERT INTO card_log_conflicts (conflict_id, {CardLogRow.Columns}) VALUES (@ConflictId, {CardLogRow.Values}) ON CONFLICT DO NOTHING",
            new DynamicParameters(row).Also(new { ConflictId = Guid.CreateVersion7(now).ToString() }), transaction).ConfigureAwait(false);
    }

    private static DynamicParameters Also(this DynamicParameters parameters, object more)
    {
        parameters.AddDynamicParams(more);
        return parameters;
    }
}

/// <summary>Which flow delivered a card log record, as <c>card_log.source</c> names it.</summary>
internal static class CardLogSources
{
    /// <summary>A purchase's DEBIT: the card's answer, or its greeting that resolved the settlement.</summary>
    public const string Settlement = "settlement";

    /// <summary>The CREDIT that returned a settlement's debit.</summary>
    public const string Reversal = "reversal";

    /// <summary>A top-up's CREDIT.</summary>
    public const string TopUp = "topup";

    /// <summary>A card credit's CREDIT (a refund, a transfer received, points).</summary>
    public const string CardCredit = "card_credit";

    /// <summary>The issuing station's load.</summary>
    public const string Load = "load";

    /// <summary>The newest record of an authentic greeting, whatever order it was.</summary>
    public const string Greeting = "greeting";

    // Transfers and cash-outs are named by their kind: "transfer", "cash-out".
}

/// <summary>One record of the card log as stored.</summary>
internal sealed record CardLogRow
{
    public const string Columns = "card_id, counter, kind, amount_minor, currency, balance_after_minor, transaction_ref, digest, received_at, source";

    public const string Values = "@CardId, @Counter, @Kind, @AmountMinor, @Currency, @BalanceAfterMinor, @TransactionRef, @Digest, @ReceivedAt, @Source";

    public const string Select =
        """
        card_id AS CardId, counter AS Counter, kind AS Kind, amount_minor AS AmountMinor, currency AS Currency,
        balance_after_minor AS BalanceAfterMinor, transaction_ref AS TransactionRef, digest AS Digest, received_at AS ReceivedAt, source AS Source
        """;

    public const string Debit = "debit";

    public const string Credit = "credit";

    public required string CardId { get; init; }

    public required long Counter { get; init; }

    public required string Kind { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required long BalanceAfterMinor { get; init; }

    public required string TransactionRef { get; init; }

    public required string Digest { get; init; }

    public required string ReceivedAt { get; init; }

    public required string Source { get; init; }

    /// <summary>What the card wrote, as the row keeps it.</summary>
    public static CardLogRow Of(string cardId, CardLogRecord record, string source, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new CardLogRow
        {
            CardId = cardId,
            Counter = record.Counter,
            Kind = record.Kind == ValueKind.Debit ? Debit : Credit,
            AmountMinor = record.Amount.MinorUnits,
            Currency = record.Amount.Currency.Code,
            BalanceAfterMinor = record.BalanceAfter.MinorUnits,
            TransactionRef = record.TransactionRef.ToString(),
            Digest = Base64Url.EncodeToString(record.Digest.Span),
            ReceivedAt = StoredTime.Format(now),
            Source = source,
        };
    }

    /// <summary>The same record the card wrote (when and how it arrived aside).</summary>
    public bool SameRecord(CardLogRow other) =>
        other is not null && (CardId, Counter, Kind, AmountMinor, Currency, BalanceAfterMinor, TransactionRef, Digest)
            == (other.CardId, other.Counter, other.Kind, other.AmountMinor, other.Currency, other.BalanceAfterMinor, other.TransactionRef, other.Digest);

    /// <summary>The amount moved, signed as the purse saw it: a debit negative.</summary>
    public long SignedAmount => Kind == Debit ? -AmountMinor : AmountMinor;
}
