using System.Data.Common;
using System.Diagnostics;
using Dapper;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Registry;

/// <summary>The double-entry journal: every movement of value is one entry whose lines sum to zero.</summary>
internal static class Journal
{
    public static async Task PostAsync(DbConnection connection, DbTransaction transaction, string reference, DateTimeOffset at,
        (string Account, long AmountMinor) debit, (string Account, long AmountMinor) credit, Currency currency)
    {
        Debug.Assert(debit.AmountMinor + credit.AmountMinor == 0, "An entry balances.");
        var entryId = Guid.CreateVersion7(at).ToString();
        var now = Clock.Format(at);
        await connection.ExecuteAsync(
            "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES (@entryId, @Account, @AmountMinor, @code, @reference, @now)",
            new[] { debit, credit }.Select(line => new { entryId, line.Account, line.AmountMinor, code = currency.Code, reference, now }),
            transaction).ConfigureAwait(false);
    }
}
