using System.Data.Common;
using Dapper;
using OpenPurse.Protocol;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// One movement of value: <see cref="Amount"/> leaves <see cref="From"/> and arrives at <see cref="To"/>.
/// It balances by construction: the journal writes it as two lines, −amount and +amount, so no
/// caller ever passes two amounts that must sum to zero.
/// </summary>
internal readonly record struct JournalEntry
{
    /// <summary>An entry moving a positive amount between two different accounts.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="amount"/> is negative (the direction is <paramref name="from"/> to <paramref name="to"/>), or has no currency.</exception>
    /// <exception cref="ArgumentException">The two accounts are one.</exception>
    public JournalEntry(Account from, Account to, Money amount)
    {
        if (amount == default)
        {
            // default(Money): no currency, which the journal's lines must have.
            throw new ArgumentOutOfRangeException(nameof(amount), "An entry moves an amount of a currency.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(amount.MinorUnits, nameof(amount));
        if (from == to)
        {
            throw new ArgumentException("An entry moves value between two accounts.", nameof(to));
        }

        From = from;
        To = to;
        Amount = amount;
    }

    public Account From { get; }

    public Account To { get; }

    /// <summary>What moves: never negative.</summary>
    public Money Amount { get; }
}

/// <summary>The double-entry journal: every movement of value is one <see cref="JournalEntry"/>, whose two lines sum to zero.</summary>
internal static class Journal
{
    /// <summary>Appends <paramref name="entry"/> under <paramref name="reference"/> (the id of the movement it belongs to) in the caller's transaction.</summary>
    public static async Task PostAsync(DbConnection connection, DbTransaction transaction, string reference, DateTimeOffset at, JournalEntry entry)
    {
        var entryId = Guid.CreateVersion7(at).ToString();
        var now = StoredTime.Format(at);
        var code = entry.Amount.Currency.Code;
        (string Account, long AmountMinor)[] lines = [(entry.From.Text, -entry.Amount.MinorUnits), (entry.To.Text, entry.Amount.MinorUnits)];
        await connection.ExecuteAsync(
            "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES (@entryId, @Account, @AmountMinor, @code, @reference, @now)",
            lines.Select(line => new { entryId, line.Account, line.AmountMinor, code, reference, now }),
            transaction).ConfigureAwait(false);
    }
}
