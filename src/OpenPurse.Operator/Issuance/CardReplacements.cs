using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Issuance;

/// <summary>What a replacement did.</summary>
/// <param name="OldCard">The lost card, masked.</param>
/// <param name="NewCard">The new card, masked; null when refused.</param>
/// <param name="Code">Null when done; else <c>card.unknown</c> or <c>card.replaced</c>.</param>
/// <param name="Carried">What the new card takes from the old one at its next sync, per currency.</param>
/// <param name="HeldBack">What stays on the old card's account until its open debits end (then it is carried too).</param>
/// <param name="HolderId">The holder both cards are registered to; null for an unregistered card.</param>
internal sealed record ReplacementOutcome(string OldCard, string? NewCard, string? Code, IReadOnlyList<Money> Carried, IReadOnlyList<Money> HeldBack, Guid? HolderId);

/// <summary>
/// A lost card replaced by a new one (docs/operations.md, "A card's life"): the old card is
/// blocked for good, the new one is issued at the station, registered to the same holder, and
/// takes the value the ledger knows for the old card, exactly once.
/// </summary>
/// <remarks>
/// The value moves as card credits (purpose <c>replacement</c>): each carry is one balanced entry,
/// the old card's account (or, for a debit owed back to the old card, <c>reversals</c>) → <c>pending</c>,
/// which the new card's next sync delivers through <see cref="CardCreditStates"/> (pending → card, once,
/// proved by the card's answer or greeting), like any value owed to a card. Not a load at the station:
/// what comes back to the old card later (a debit that expired, a return) must reach the new card
/// away from the station too, and one mechanism for both is one thing to prove exactly once.
/// A carry takes what the old card's account holds beyond what its open debits (a purchase
/// authorized, or expired without word from the card; a transfer or cash-out being debited) may still
/// take: the holder is never paid twice for a debit the old card made before its block that completes
/// afterwards. An expired purchase is held back too: the old card's greeting may yet prove that it ran
/// the DEBIT, which takes the amount off its account (owed back, then carried as a return). What comes back later
/// is carried by the new card's next sync (<see cref="CarryToAsync"/>); every carry is serialized on
/// the replacement's row.
/// </remarks>
internal sealed class CardReplacements(Database database, CardIssuer issuer, TimeProvider time)
{
    /// <summary>The longest chain of replacements followed back from a card (a replacement of a replacement …).</summary>
    private const int ChainMax = 16;

    /// <summary>
    /// Replaces <paramref name="oldCard"/>: blocks it (if it is not), issues the new card into
    /// <paramref name="path"/>, and in one transaction records the replacement, registers the new card
    /// to the old one's holder and carries the old card's value.
    /// </summary>
    /// <exception cref="IOException">The file cannot be written (nothing is recorded; the old card stays blocked).</exception>
    /// <exception cref="InvalidOperationException">The new card could not be made.</exception>
    public async Task<(ReplacementOutcome Outcome, bool Blocked, CardId? NewCard)> ReplaceAsync(CardId oldCard, string path, string reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reason);
        var known = await ReadAsync(oldCard, cancellationToken).ConfigureAwait(false);
        if (known is null)
        {
            return (Refused(oldCard, ProblemCode.CardUnknown), false, null);
        }

        if (known.Value.ReplacedBy is not null)
        {
            return (Refused(oldCard, ProblemCode.CardReplaced), false, null);
        }

        // The block first: the card is lost, and nothing it does from now on is taken, whatever happens next.
        var blocked = await CardStates.RunAsync(database, oldCard, CardStates.Block, time.GetUtcNow(), cancellationToken).ConfigureAwait(false) == CardChange.Done;
        using var card = await issuer.IssueCardFileAsync(path, Money.Zero(Currency.Eur), cancellationToken: cancellationToken).ConfigureAwait(false);
        var newCard = card.CardId;
        var now = time.GetUtcNow();
        var replacementId = Guid.CreateVersion7(now).ToString();
        ReplacementOutcome? outcome = null;
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var (connection, transaction) = (write.Connection, write.Inner);
            var inserted = await connection.ExecuteAsync(
                """
                INSERT INTO card_replacements (replacement_id, old_card_id, new_card_id, reason, created_at) VALUES (@replacementId, @old, @new, @reason, @now)
                ON CONFLICT (old_card_id) DO NOTHING
                """,
                new { replacementId, old = oldCard.Digits, @new = newCard.Digits, reason, now = StoredTime.Format(now) }, transaction).ConfigureAwait(false);
            if (inserted == 1)
            {
                var holder = await connection.ExecuteScalarAsync<string?>("SELECT holder_id FROM cards WHERE card_id = @id", new { id = oldCard.Digits }, transaction).ConfigureAwait(false);
                await connection.ExecuteAsync("UPDATE cards SET holder_id = @holder WHERE card_id = @id", new { holder, id = newCard.Digits }, transaction).ConfigureAwait(false);
                var (carried, heldBack) = await CarryAsync(connection, transaction, replacementId, oldCard.Digits, newCard.Digits, now).ConfigureAwait(false);
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
                outcome = new ReplacementOutcome(oldCard.Masked, newCard.Masked, null, carried, heldBack, holder is null ? null : Guid.Parse(holder));
            }
        }

        if (outcome is null)
        {
            // Another station replaced it meanwhile: the card made here is never used, and its number is blocked.
            card.Dispose();
            File.Delete(path);
            await issuer.BlockAsync(newCard, CancellationToken.None).ConfigureAwait(false);
            return (Refused(oldCard, ProblemCode.CardReplaced), blocked, null);
        }

        return (outcome, blocked, newCard);
    }

    /// <summary>The card that holds the value of <paramref name="cardDigits"/> now: its replacement's replacement …, or itself when it was not replaced.</summary>
    public static async Task<string> SuccessorAsync(DbConnection connection, DbTransaction? transaction, string cardDigits)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var card = cardDigits;
        for (var hops = 0; hops < ChainMax
            && await connection.ExecuteScalarAsync<string?>("SELECT new_card_id FROM card_replacements WHERE old_card_id = @card", new { card }, transaction).ConfigureAwait(false) is { } next; hops++)
        {
            card = next;
        }

        return card;
    }

    /// <summary>Whether the card was replaced (a replaced card is never unblocked).</summary>
    public static async Task<bool> IsReplacedAsync(DbConnection connection, DbTransaction? transaction, string cardDigits) =>
        await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM card_replacements WHERE old_card_id = @id", new { id = cardDigits }, transaction).ConfigureAwait(false) > 0;

    /// <summary>
    /// At <paramref name="cardDigits"/>' sync, in its transaction: whatever came back to the cards it
    /// replaced (and those they replaced) since their last carry is carried on to it, oldest card first,
    /// so that the sync's CREDITs deliver it.
    /// </summary>
    public static async Task CarryToAsync(DbConnection connection, DbTransaction transaction, string cardDigits, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var chain = new List<(string ReplacementId, string OldCard, string NewCard)>();
        var card = cardDigits;
        while (chain.Count < ChainMax
            && await connection.QuerySingleOrDefaultAsync<(string ReplacementId, string OldCard, string NewCard)?>(
                "SELECT replacement_id, old_card_id, new_card_id FROM card_replacements WHERE new_card_id = @card", new { card }, transaction).ConfigureAwait(false) is { } link)
        {
            chain.Add(link);
            card = link.OldCard;
        }

        for (var i = chain.Count - 1; i >= 0; i--)
        {
            await CarryAsync(connection, transaction, chain[i].ReplacementId, chain[i].OldCard, chain[i].NewCard, now).ConfigureAwait(false);
        }
    }

    // Everything the old card is owed that the new one can take, in the caller's transaction: its
    // owed card credits (moved to the new card as they are), the returns of its debits owed back
    // (reversals → pending, once per settlement), and what its account holds beyond what its open
    // debits may still take (card → pending). The replacement's row is locked first: two carries
    // of one replacement never read the same balance.
    private static async Task<(IReadOnlyList<Money> Carried, IReadOnlyList<Money> HeldBack)> CarryAsync(
        DbConnection connection, DbTransaction transaction, string replacementId, string oldCard, string newCard, DateTimeOffset now)
    {
        await connection.ExecuteAsync("UPDATE card_replacements SET reason = reason WHERE replacement_id = @replacementId", new { replacementId }, transaction).ConfigureAwait(false);
        var stamp = StoredTime.Format(now);
        var carried = new Dictionary<Currency, long>();

        // Value owed to the old card and not yet on its way to it: the new card takes it instead.
        var owed = (await connection.QueryAsync<(long AmountMinor, string Currency)>(
            $"SELECT amount_minor, currency FROM card_credits WHERE card_id = @oldCard AND state {CardCreditStates.In(CardCreditState.Owed)}",
            new { oldCard }, transaction).ConfigureAwait(false)).ToList();
        await connection.ExecuteAsync(
            $"UPDATE card_credits SET card_id = @newCard, updated_at = @stamp WHERE card_id = @oldCard AND state {CardCreditStates.In(CardCreditState.Owed)}",
            new { oldCard, newCard, stamp }, transaction).ConfigureAwait(false);
        foreach (var credit in owed.Where(c => Currency.TryFromCode(c.Currency, out _)))
        {
            Add(carried, new Money(credit.AmountMinor, Currency.FromCode(credit.Currency)));
        }

        // Debits owed back to the old card, whose CREDIT it can no longer take (it is blocked):
        // each once, unless a CREDIT for it was made before the block (its answer may still come).
        var returns = (await connection.QueryAsync<(string SettlementId, long AmountMinor, string Currency)>(
            $"""
            SELECT settlement_id, amount_minor, currency FROM settlements s
            WHERE card_id = @oldCard AND state {SettlementStates.In(SettlementState.Reversing)} AND reversal_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM card_carries c WHERE c.settlement_id = s.settlement_id)
            """,
            new { oldCard }, transaction).ConfigureAwait(false)).ToList();
        foreach (var owedBack in returns)
        {
            var amount = new Money(owedBack.AmountMinor, Currency.FromCode(owedBack.Currency));
            await CarryOneAsync(connection, transaction, replacementId, "return", owedBack.SettlementId, newCard, amount, Account.Reversals, now).ConfigureAwait(false);
            Add(carried, amount);
        }

        // The old card's account, less what its open debits may still take from it; one query, one snapshot.
        var accounts = await connection.QueryAsync<(string Currency, long Balance, long Open)>(
            $"""
            SELECT currency, CAST(SUM(balance) AS BIGINT) AS balance, CAST(SUM(open_minor) AS BIGINT) AS open_minor
            FROM (SELECT currency, amount_minor AS balance, 0 AS open_minor FROM journal WHERE account = @account
                  UNION ALL SELECT currency, 0, amount_minor FROM settlements WHERE card_id = @oldCard AND state {SettlementStates.In(SettlementState.Authorized, SettlementState.Expired)}
                  UNION ALL SELECT currency, 0, amount_minor FROM transfers WHERE card_id = @oldCard AND state = 'debiting'
                  UNION ALL SELECT currency, 0, amount_minor FROM cashouts WHERE card_id = @oldCard AND state = 'debiting') AS sides
            GROUP BY currency ORDER BY currency
            """,
            new { account = Account.Card(oldCard).Text, oldCard }, transaction).ConfigureAwait(false);
        var heldBack = new List<Money>();
        foreach (var account in accounts.Where(a => Currency.TryFromCode(a.Currency, out _)))
        {
            var currency = Currency.FromCode(account.Currency);
            var free = account.Balance - account.Open;
            if (free > 0)
            {
                var amount = new Money(free, currency);
                await CarryOneAsync(connection, transaction, replacementId, "balance", null, newCard, amount, Account.Card(oldCard), now).ConfigureAwait(false);
                Add(carried, amount);
            }

            if (account.Open > 0 && account.Balance > 0)
            {
                heldBack.Add(new Money(Math.Min(account.Open, account.Balance), currency));
            }
        }

        return ([.. carried.OrderBy(c => c.Key.Code, StringComparer.Ordinal).Select(c => new Money(c.Value, c.Key))], heldBack);
    }

    // One carry: its row, and the card credit that owes the new card its amount (from → pending).
    private static async Task CarryOneAsync(DbConnection connection, DbTransaction transaction, string replacementId, string source, string? settlementId,
        string newCard, Money amount, Account from, DateTimeOffset now)
    {
        var carryId = Guid.CreateVersion7(now);
        await connection.ExecuteAsync(
            """
            INSERT INTO card_carries (carry_id, replacement_id, source, settlement_id, amount_minor, currency, created_at)
            VALUES (@carryId, @replacementId, @source, @settlementId, @amount, @currency, @now)
            """,
            new { carryId = carryId.ToString(), replacementId, source, settlementId, amount = amount.MinorUnits, currency = amount.Currency.Code, now = StoredTime.Format(now) },
            transaction).ConfigureAwait(false);
        if (!await CardCredits.OweAsync(connection, transaction, newCard, amount, ValueUpdatePurposes.Replacement, carryId, from, now).ConfigureAwait(false))
        {
            throw new InvalidOperationException("A new carry's card credit exists already.");
        }
    }

    private static void Add(Dictionary<Currency, long> totals, Money amount) =>
        totals[amount.Currency] = checked(totals.GetValueOrDefault(amount.Currency) + amount.MinorUnits);

    private static ReplacementOutcome Refused(CardId oldCard, ProblemCode code) => new(oldCard.Masked, null, code.Code, [], [], null);

    private async Task<(string CardId, string? ReplacedBy)?> ReadAsync(CardId cardId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await connection.QuerySingleOrDefaultAsync<(string CardId, string? ReplacedBy)?>(
            "SELECT c.card_id, r.new_card_id FROM cards c LEFT JOIN card_replacements r ON r.old_card_id = c.card_id WHERE c.card_id = @id",
            new { id = cardId.Digits }).ConfigureAwait(false);
    }
}
