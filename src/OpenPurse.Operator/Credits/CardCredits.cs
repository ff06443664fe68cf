using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Credits;

/// <summary>
/// Value owed to a card and delivered at its next sync (table <c>card_credits</c>): recorded, and
/// posted <c>from</c> → <see cref="Account.Pending"/>, in the caller's transaction.
/// </summary>
/// <remarks>
/// The recording side only, as transfers and returned cash-outs need it; the delivery at the card's
/// sync (pending → card, a CREDIT with SIG5) and the full table are the card credits' own.
/// </remarks>
internal static class CardCredits
{
    /// <summary>Records <paramref name="amount"/> as owed to the card, idempotent on (purpose, source).</summary>
    /// <returns>True when recorded now; false when it was recorded before (nothing posted again).</returns>
    public static async Task<bool> OweAsync(DbConnection connection, DbTransaction transaction, string cardDigits, Money amount, string purpose, Guid sourceId, Account from, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (await StateOfAsync(connection, transaction, purpose, sourceId).ConfigureAwait(false) is not null)
        {
            return false;
        }

        var creditId = Guid.CreateVersion7(now).ToString();
        await connection.ExecuteAsync(
            """
            INSERT INTO card_credits (credit_id, card_id, amount_minor, currency, purpose, source_id, state, created_at)
            VALUES (@creditId, @cardDigits, @amount, @currency, @purpose, @sourceId, 'owed', @now)
            """,
            new { creditId, cardDigits, amount = amount.MinorUnits, currency = amount.Currency.Code, purpose, sourceId = sourceId.ToString(), now = StoredTime.Format(now) },
            transaction).ConfigureAwait(false);
        await Journal.PostAsync(connection, transaction, creditId, now, new JournalEntry(from, Account.Pending, amount)).ConfigureAwait(false);
        return true;
    }

    /// <summary>"owed", "crediting", "credited", or null when nothing is owed for (purpose, source).</summary>
    public static Task<string?> StateOfAsync(DbConnection connection, DbTransaction? transaction, string purpose, Guid sourceId) =>
        connection.QuerySingleOrDefaultAsync<string?>(
            "SELECT state FROM card_credits WHERE purpose = @purpose AND source_id = @sourceId", new { purpose, sourceId = sourceId.ToString() }, transaction);
}
