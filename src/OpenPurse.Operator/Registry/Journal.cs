using System.Data.Common;
using System.Diagnostics;
using Dapper;
using OpenPurse.Protocol;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>The double-entry journal: every movement of value is one entry whose lines sum to zero.</summary>
internal static class Journal
{
    public static async Task PostAsync(DbConnection connection, DbTransaction transaction, string reference, DateTimeOffset at,
        (string Account, long AmountMinor) debit, (string Account, long AmountMinor) credit, Currency currency)
    {
        Debug.Assert(debit.AmountMinor + credit.AmountMinor == 0, "An entry balances.");
        var entryId = Guid.CreateVersion7(at).ToString();
        var now = StoredTime.Format(at);
        await connection.ExecuteAsync(
            "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES (@entryId, @Account, @AmountMinor, @code, @reference, @now)",
            new[] { debit, credit }.Select(line => new { entryId, line.Account, line.AmountMinor, code = currency.Code, reference, now }),
            transaction).ConfigureAwait(false);
    }
}

/// <summary>The journal's accounts (docs/reliability.md, "Ledger").</summary>
internal static class Accounts
{
    /// <summary>Value the operator put into circulation (negative).</summary>
    public const string Issued = "issued";

    /// <summary>Value taken from cards by debits of settlements that did not complete, owed back to them.</summary>
    public const string Reversals = "reversals";

    /// <summary>Card accounts are this prefix and the card's digits.</summary>
    public const string CardPrefix = "card:";

    /// <summary>Store accounts are this prefix and the store's id.</summary>
    public const string StorePrefix = "store:";

    /// <summary>What the operator owes the holder of a card.</summary>
    public static string Card(string cardDigits) => CardPrefix + cardDigits;

    /// <summary>What the operator owes a store.</summary>
    public static string Store(string storeId) => StorePrefix + storeId;
}
