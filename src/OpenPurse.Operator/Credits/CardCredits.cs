using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Credits;

/// <summary>
/// Value the operator owes a card outside a settlement (a store's refund): recorded in the caller's
/// transaction as the entry <c>from → pending</c>, and taken by the card as a CREDIT with SIG5 at its
/// next sync (<c>POST /v1/cards/sync</c>), which posts <c>pending → card</c>.
/// </summary>
/// <remarks>
/// This is the contract's minimal form: a debt is its journal entry under its source's id, so it is
/// idempotent on (purpose, source) and its state is <c>owed</c> once posted. The <c>card_credits</c>
/// table and the delivery at the card's sync replace it without changing its callers.
/// </remarks>
internal static class CardCredits
{
    /// <summary>
    /// Records that <paramref name="amount"/> is owed to the card with <paramref name="cardDigits"/>
    /// for (<paramref name="purpose"/>, <paramref name="sourceId"/>): <paramref name="from"/> → pending,
    /// in the caller's transaction.
    /// </summary>
    /// <returns>True when recorded now; false when it was owed already (nothing written).</returns>
    public static async Task<bool> OweAsync(DbConnection connection, DbTransaction transaction, string cardDigits, Money amount, string purpose, Guid sourceId,
        Account from, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(purpose);
        // The card's account: refuses digits that are not a card's before anything is written.
        _ = Account.Card(cardDigits);
        if (await StateOfAsync(connection, transaction, purpose, sourceId).ConfigureAwait(false) is not null)
        {
            return false;
        }

        await Journal.PostAsync(connection, transaction, sourceId.ToString(), now, new JournalEntry(from, Account.Pending, amount)).ConfigureAwait(false);
        return true;
    }

    /// <summary>The state of the debt for (<paramref name="purpose"/>, <paramref name="sourceId"/>): <c>owed</c>, <c>crediting</c>, <c>credited</c>, or null when none is recorded.</summary>
    public static async Task<string?> StateOfAsync(DbConnection connection, DbTransaction? transaction, string purpose, Guid sourceId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var owed = await connection.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM journal WHERE reference = @reference AND account = @pending AND amount_minor > 0",
            new { reference = sourceId.ToString(), pending = Account.Pending.Text }, transaction).ConfigureAwait(false);
        return owed > 0 ? "owed" : null;
    }
}
