using System.Data.Common;
using System.Globalization;
using System.Text;
using Dapper;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The ledger's invariants, checked on one consistent snapshot of the registry: every journal
/// entry balances, each card account equals the operator's shadow of that card's purse, what the
/// operator owes (cards, stores, reversals) equals what it issued, and each settlement that ended
/// is posted the way its state says. Backs <c>openpurse-operator reconcile</c>.
/// </summary>
/// <remarks>
/// Accounts (<see cref="Account"/>, which alone knows their text): <c>issued</c> (negative: value
/// put into circulation), <c>card:&lt;16 digits&gt;</c>, <c>store:&lt;store id&gt;</c>, <c>reversals</c>
/// (value debited by settlements that did not complete, owed back to those cards), <c>topups</c>
/// (negative: value put into circulation against credit-card charges; counted with <c>issued</c>). What each
/// settlement state must have posted comes from the transition table (<see cref="SettlementStates.PostingsTo"/>).
/// Every query sums with <c>CAST(SUM(…) AS BIGINT)</c>: PostgreSQL sums BIGINTs as NUMERIC.
/// </remarks>
internal sealed class Ledger(Database database)
{
    /// <summary>A report reads the whole journal: far longer than a state change may take.</summary>
    private const int QueryTimeoutSeconds = 600;

    private static readonly string s_cardPrefix = Account.PrefixOf(AccountKind.Card);

    private static readonly string s_settlementLinesSql =
        $"""
        SELECT s.settlement_id AS SettlementId, s.state AS State, s.card_id AS CardId, s.store_id AS StoreId,
               s.amount_minor AS AmountMinor, s.currency AS Currency,
               j.entry_id AS EntryId, j.account AS Account, j.amount_minor AS LineAmountMinor, j.currency AS LineCurrency
        FROM settlements s LEFT JOIN journal j ON j.reference = s.settlement_id
        WHERE s.state {SettlementStates.In(SettlementStates.Posted)}
        ORDER BY s.settlement_id, j.entry_id
        """;

    /// <summary>Checks every invariant in one read-only snapshot and reports what differs.</summary>
    public async Task<LedgerReport> ReconcileAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginReadAsync(connection, cancellationToken).ConfigureAwait(false);
        var differences = new List<LedgerDifference>();
        var currencies = await CurrencyTotalsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await UnbalancedEntriesAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await ShadowMismatchesAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await SettlementPostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await TopUpPostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await CardCreditPostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await RefundPostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await DecreasePostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await Clearing.ClearingLedger.CheckAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        await CarryPostingsAsync(connection, transaction, differences, cancellationToken).ConfigureAwait(false);
        var disputed = await connection.QueryAsync<DisputedSettlement>(Command(
            $"""
            SELECT settlement_id AS SettlementId, store_id AS StoreId, order_no AS OrderNo, amount_minor AS AmountMinor, currency AS Currency,
                   store_attempts AS StoreAttempts, store_answer AS StoreAnswer, store_given_up_at AS DisputedAt
            FROM settlements WHERE state {SettlementStates.In(SettlementState.Disputed)} ORDER BY created_at
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new LedgerReport(currencies, differences) { Disputed = [.. disputed] };
    }

    /// <summary>A card number as it may be shown: the last four digits.</summary>
    internal static string MaskCard(string digits) => CardId.TryParse(digits, out var id)
        ? id.Masked
        : $"•••• {(digits.Length >= 4 ? digits[^4..] : "")} (not a card number)";

    /// <summary>An amount in minor units as a person reads it, e.g. <c>12.34</c> for 1234 EUR; an unknown currency in minor units.</summary>
    internal static string FormatUnits(long minorUnits, string currency)
    {
        var digits = Currency.TryFromCode(currency, out var known) ? known.MinorDigits : 0;
        if (digits == 0)
        {
            return minorUnits.ToString(CultureInfo.InvariantCulture);
        }

        var magnitude = Int128.Abs(minorUnits).ToString(CultureInfo.InvariantCulture).PadLeft(digits + 1, '0');
        return $"{(minorUnits < 0 ? "-" : "")}{magnitude[..^digits]}.{magnitude[^digits..]}";
    }

    /// <summary>Like <see cref="FormatUnits"/>, with the currency's code: <c>12.34 EUR</c>.</summary>
    internal static string FormatAmount(long minorUnits, string currency) => $"{FormatUnits(minorUnits, currency)} {currency}";

    /// <summary>SQL: the journal line's account is of <paramref name="kind"/> (a card's or a store's, by its prefix).</summary>
    private static string HasPrefix(AccountKind kind) =>
        $"SUBSTR(account, 1, {Account.PrefixOf(kind).Length}) = '{Account.PrefixOf(kind)}'";

    private static CommandDefinition Command(string sql, DbTransaction transaction, CancellationToken cancellationToken) =>
        new(sql, transaction: transaction, commandTimeout: QueryTimeoutSeconds, cancellationToken: cancellationToken);

    private static async Task<IReadOnlyList<LedgerCurrencyTotals>> CurrencyTotalsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var balances = await connection.QueryAsync<(string Currency, string Kind, long Balance)>(Command(
            $"""
            SELECT currency, kind, CAST(SUM(amount_minor) AS BIGINT) AS balance
            FROM (SELECT currency, amount_minor,
                         CASE WHEN account = '{Account.Issued.Text}' THEN '{AccountKind.Issued}'
                              WHEN account = '{Account.Reversals.Text}' THEN '{AccountKind.Reversals}'
                              WHEN account = '{Account.TopUps.Text}' THEN '{AccountKind.TopUps}'
                              WHEN account = '{Account.Pending.Text}' THEN '{AccountKind.Pending}'
                              WHEN account = '{Account.Payouts.Text}' THEN '{AccountKind.Payouts}'
                              WHEN account = '{Account.Fees.Text}' THEN '{AccountKind.Fees}'
                              WHEN account = '{Account.StorePayouts.Text}' THEN '{AccountKind.StorePayouts}'
                              WHEN {HasPrefix(AccountKind.Card)} THEN '{AccountKind.Card}'
                              WHEN {HasPrefix(AccountKind.Store)} THEN '{AccountKind.Store}'
                              ELSE 'other' END AS kind
                  FROM journal) AS lines
            GROUP BY currency, kind
            """,
            transaction, cancellationToken)).ConfigureAwait(false);

        var totals = new List<LedgerCurrencyTotals>();
        foreach (var currency in balances.GroupBy(b => b.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            long Of(string kind) => currency.Where(b => b.Kind == kind).Sum(b => b.Balance);
            var line = new LedgerCurrencyTotals(currency.Key, checked(-Of(nameof(AccountKind.Issued)) - Of(nameof(AccountKind.TopUps))), Of(nameof(AccountKind.Card)), Of(nameof(AccountKind.Store)), Of(nameof(AccountKind.Reversals)))
            {
                Pending = Of(nameof(AccountKind.Pending)),
                Payouts = Of(nameof(AccountKind.Payouts)),
                Fees = Of(nameof(AccountKind.Fees)),
                StorePayouts = Of(nameof(AccountKind.StorePayouts)),
            };
            totals.Add(line);
            if (!line.IsBalanced)
            {
                var owed = line.Owed;
                var other = Of("other");
                differences.Add(new LedgerDifference(
                    LedgerDifference.LedgerNotBalanced,
                    line.Currency,
                    FormatAmount(line.Issued, line.Currency),
                    FormatAmount(owed, line.Currency),
                    $"cards {FormatUnits(line.Cards, line.Currency)} + stores {FormatUnits(line.Stores, line.Currency)} + reversals {FormatUnits(line.Reversals, line.Currency)} + pending {FormatUnits(line.Pending, line.Currency)} + payouts {FormatUnits(line.Payouts, line.Currency)} + fees {FormatUnits(line.Fees, line.Currency)} + storepayouts {FormatUnits(line.StorePayouts, line.Currency)} "
                    + $"= {FormatUnits(owed, line.Currency)}, issued {FormatUnits(line.Issued, line.Currency)}"
                    + (other == 0 ? "" : $"; accounts outside issued, card:, store:, reversals, pending, payouts, fees, storepayouts hold {FormatUnits(other, line.Currency)}")));
            }
        }

        return totals;
    }

    private static async Task UnbalancedEntriesAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var entries = await connection.QueryAsync<(string EntryId, string Currency, long Total, long Lines, string Reference)>(Command(
            """
            SELECT entry_id, currency, CAST(SUM(amount_minor) AS BIGINT) AS total, COUNT(*) AS lines, MIN(reference) AS reference
            FROM journal
            GROUP BY entry_id, currency
            HAVING SUM(amount_minor) <> 0
            ORDER BY entry_id, currency
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var entry in entries)
        {
            differences.Add(new LedgerDifference(
                LedgerDifference.EntryUnbalanced,
                entry.EntryId,
                FormatAmount(0, entry.Currency),
                FormatAmount(entry.Total, entry.Currency),
                $"its {entry.Lines} {entry.Currency} line(s) do not sum to zero; reference {entry.Reference}"));
        }
    }

    /// <summary>
    /// What each replaced card's account gave its replacement of the balance it held (card_id, currency,
    /// amount_minor; card_carries, source balance): the card's chip, blocked, still holds it, so a
    /// check of the card's account against its chip or its records counts it as the card's.
    /// </summary>
    internal const string CarriedBalances =
        "SELECT r.old_card_id AS card_id, k.currency AS currency, k.amount_minor AS amount_minor FROM card_carries k JOIN card_replacements r ON r.replacement_id = k.replacement_id WHERE k.source = 'balance'";

    /// <remarks>
    /// A card absent on one side counts as 0 there: a card account without a purse shadow, or the reverse, is reported when the other side is not 0.
    /// A replaced card's account gave what its replacement carried (<c>card_carries</c>, source <c>balance</c>) while its chip, blocked, kept it:
    /// its account and what was carried from it add up to its shadow.
    /// </remarks>
    private static async Task ShadowMismatchesAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var cards = await connection.QueryAsync<(string CardId, string Currency, long Journal, long Shadow, long JournalLines, long ShadowRows)>(Command(
            $"""
            SELECT card_id, currency, CAST(SUM(journal_minor) AS BIGINT) AS journal, CAST(SUM(shadow_minor) AS BIGINT) AS shadow,
                   CAST(SUM(journal_lines) AS BIGINT) AS journal_lines, CAST(SUM(shadow_rows) AS BIGINT) AS shadow_rows
            FROM (SELECT SUBSTR(account, {s_cardPrefix.Length + 1}) AS card_id, currency, amount_minor AS journal_minor, 0 AS shadow_minor, 1 AS journal_lines, 0 AS shadow_rows
                  FROM journal WHERE {HasPrefix(AccountKind.Card)}
                  UNION ALL
                  SELECT card_id, currency, 0, balance_minor, 0, 1 FROM card_purses
                  UNION ALL
                  SELECT card_id, currency, amount_minor, 0, 0, 0 FROM ({CarriedBalances}) AS carried) AS sides
            GROUP BY card_id, currency
            HAVING SUM(journal_minor) <> SUM(shadow_minor)
            ORDER BY card_id, currency
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var card in cards)
        {
            var journal = card.JournalLines == 0 ? "has no journal lines" : $"holds {FormatAmount(card.Journal, card.Currency)}";
            var shadow = card.ShadowRows == 0 ? "has no card_purses row" : $"holds {FormatAmount(card.Shadow, card.Currency)}";
            differences.Add(new LedgerDifference(
                LedgerDifference.CardShadowMismatch,
                card.CardId,
                FormatAmount(card.Shadow, card.Currency),
                FormatAmount(card.Journal, card.Currency),
                $"account {Account.Shown(s_cardPrefix + card.CardId)} {journal}; its {card.Currency} purse shadow {shadow}"));
        }
    }

    /// <remarks>Streams the settlements with their journal lines, in settlement order, so that a long history is never held in memory at once.</remarks>
    private static async Task SettlementPostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        SettlementLineRow? current = null;
        var lines = new List<(string EntryId, Line Line)>();
        var rows = connection.QueryUnbufferedAsync<SettlementLineRow>(s_settlementLinesSql, transaction: transaction, commandTimeout: QueryTimeoutSeconds);
        await foreach (var row in rows.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (current is not null && current.SettlementId != row.SettlementId)
            {
                CheckPostings(current, lines, differences);
                lines.Clear();
            }

            current = row;
            if (row.EntryId is not null)
            {
                lines.Add((row.EntryId, new Line(row.Account!, row.LineAmountMinor!.Value, row.LineCurrency!)));
            }
        }

        if (current is not null)
        {
            CheckPostings(current, lines, differences);
        }
    }

    /// <summary>
    /// Every top-up posted the way its state says: credited and captured ones exactly one entry,
    /// topups → its card, of its amount; every other one nothing. And nothing else touches the
    /// <c>topups</c> account: its balance is minus the sum of the top-ups the cards took.
    /// </summary>
    private static async Task TopUpPostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync<(string TopUpId, string State, string CardId, long AmountMinor, string Currency, long Lines, long ToCard, long FromTopUps)>(Command(
            $"""
            SELECT t.topup_id, t.state, t.card_id, t.amount_minor, t.currency,
                   CAST(COUNT(j.entry_id) AS BIGINT) AS lines,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{s_cardPrefix}' || t.card_id AND j.currency = t.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS to_card,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.TopUps.Text}' AND j.currency = t.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS from_topups
            FROM topups t LEFT JOIN journal j ON j.reference = t.topup_id
            GROUP BY t.topup_id, t.state, t.card_id, t.amount_minor, t.currency
            ORDER BY t.topup_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        var posted = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            var isPosted = TopUps.TopUpStates.Machine.TryParse(row.State, out var state) && TopUps.TopUpStates.Posted.Contains(state);
            var (lines, toCard, fromTopUps) = isPosted ? (2L, row.AmountMinor, -row.AmountMinor) : (0L, 0L, 0L);
            if (isPosted)
            {
                posted[row.Currency] = checked(posted.GetValueOrDefault(row.Currency) + row.AmountMinor);
            }

            if (row.Lines != lines || row.ToCard != toCard || row.FromTopUps != fromTopUps)
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.TopUpPostingMismatch,
                    row.TopUpId,
                    isPosted ? $"[{Account.TopUps} -{FormatAmount(row.AmountMinor, row.Currency)}, card:{MaskCard(row.CardId)} +{FormatAmount(row.AmountMinor, row.Currency)}]" : "no journal lines",
                    $"{row.Lines} line(s): card {FormatAmount(row.ToCard, row.Currency)}, topups {FormatAmount(row.FromTopUps, row.Currency)}",
                    $"{row.State} top-up of {FormatAmount(row.AmountMinor, row.Currency)} by card {MaskCard(row.CardId)}"));
            }
        }

        var accounts = await connection.QueryAsync<(string Currency, long Balance)>(Command(
            $"SELECT currency, CAST(SUM(amount_minor) AS BIGINT) AS balance FROM journal WHERE account = '{Account.TopUps.Text}' GROUP BY currency ORDER BY currency",
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var currency in accounts.Select(a => a.Currency).Union(posted.Keys).Distinct(StringComparer.Ordinal))
        {
            var balance = accounts.Where(a => a.Currency == currency).Sum(a => a.Balance);
            var expected = -posted.GetValueOrDefault(currency);
            if (balance != expected)
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.TopUpPostingMismatch,
                    currency,
                    FormatAmount(expected, currency),
                    FormatAmount(balance, currency),
                    $"the {Account.TopUps} account is not minus the sum of the top-ups the cards took"));
            }
        }
    }

    /// <summary>
    /// Every card credit posted the way its state says: the giver → pending when it was owed, and
    /// pending → its card once credited, each of its amount. And the <c>pending</c> account holds
    /// exactly what cards are owed and have not taken.
    /// </summary>
    private static async Task CardCreditPostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync<(string CreditId, string State, string Purpose, string CardId, long AmountMinor, string Currency, long Lines, long ToCard, long ToPending)>(Command(
            $"""
            SELECT c.credit_id, c.state, c.purpose, c.card_id, c.amount_minor, c.currency,
                   CAST(COUNT(j.entry_id) AS BIGINT) AS lines,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{s_cardPrefix}' || c.card_id AND j.currency = c.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS to_card,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.Pending.Text}' AND j.currency = c.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS to_pending
            FROM card_credits c LEFT JOIN journal j ON j.reference = c.credit_id
            GROUP BY c.credit_id, c.state, c.purpose, c.card_id, c.amount_minor, c.currency
            ORDER BY c.credit_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        var owed = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            var credited = row.State == Credits.CardCreditStates.Machine.Text(Credits.CardCreditState.Credited);
            var (lines, toCard, toPending) = credited ? (4L, row.AmountMinor, 0L) : (2L, 0L, row.AmountMinor);
            if (!credited)
            {
                owed[row.Currency] = checked(owed.GetValueOrDefault(row.Currency) + row.AmountMinor);
            }

            if (row.Lines != lines || row.ToCard != toCard || row.ToPending != toPending)
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.CardCreditPostingMismatch,
                    row.CreditId,
                    credited ? $"[→ {Account.Pending} +{FormatAmount(row.AmountMinor, row.Currency)}] [{Account.Pending} → card:{MaskCard(row.CardId)} +{FormatAmount(row.AmountMinor, row.Currency)}]"
                        : $"[→ {Account.Pending} +{FormatAmount(row.AmountMinor, row.Currency)}]",
                    $"{row.Lines} line(s): card {FormatAmount(row.ToCard, row.Currency)}, pending {FormatAmount(row.ToPending, row.Currency)}",
                    $"{row.State} {row.Purpose} credit of {FormatAmount(row.AmountMinor, row.Currency)} to card {MaskCard(row.CardId)}"));
            }
        }

        var accounts = await connection.QueryAsync<(string Currency, long Balance)>(Command(
            $"SELECT currency, CAST(SUM(amount_minor) AS BIGINT) AS balance FROM journal WHERE account = '{Account.Pending.Text}' GROUP BY currency ORDER BY currency",
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var currency in accounts.Select(a => a.Currency).Union(owed.Keys).Distinct(StringComparer.Ordinal))
        {
            var balance = accounts.Where(a => a.Currency == currency).Sum(a => a.Balance);
            var expected = owed.GetValueOrDefault(currency);
            if (balance != expected)
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.CardCreditPostingMismatch,
                    currency,
                    FormatAmount(expected, currency),
                    FormatAmount(balance, currency),
                    $"the {Account.Pending} account is not the sum of what cards are owed and have not taken"));
            }
        }
    }

    /// <summary>
    /// Every refund is owed to the card that paid as one card credit (purpose <c>refund</c>, source
    /// the refund) of its amount, posted from its store's account; and the refunds of a settlement
    /// never add up to more than it paid. (The credit's own postings are checked with the card credits.)
    /// </summary>
    private static async Task RefundPostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var store = Account.PrefixOf(AccountKind.Store);
        var rows = await connection.QueryAsync<(string RefundId, string State, string StoreId, string CardId, long AmountMinor, string Currency,
            string? CreditId, string? CreditCard, long? CreditAmount, string? CreditCurrency, long FromStore)>(Command(
            $"""
            SELECT r.refund_id, r.state, r.store_id, r.card_id, r.amount_minor, r.currency,
                   c.credit_id, c.card_id AS credit_card, c.amount_minor AS credit_amount, c.currency AS credit_currency,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{store}' || r.store_id AND j.currency = r.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS from_store
            FROM refunds r
                 LEFT JOIN card_credits c ON c.purpose = '{Protocol.Messages.ValueUpdatePurposes.Refund}' AND c.source_id = r.refund_id
                 LEFT JOIN journal j ON j.reference = c.credit_id
            GROUP BY r.refund_id, r.state, r.store_id, r.card_id, r.amount_minor, r.currency, c.credit_id, c.card_id, c.amount_minor, c.currency
            ORDER BY r.refund_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        // A refund owed to a card that was replaced before it took it is owed to the replacement.
        var replacedBy = (await connection.QueryAsync<(string Old, string New)>(Command("SELECT old_card_id, new_card_id FROM card_replacements", transaction, cancellationToken)).ConfigureAwait(false))
            .ToDictionary(r => r.Old, r => r.New, StringComparer.Ordinal);
        bool OwedTo(string card, string? creditCard)
        {
            for (var hops = 0; hops <= replacedBy.Count; hops++)
            {
                if (card == creditCard)
                {
                    return true;
                }

                if (!replacedBy.TryGetValue(card, out var next))
                {
                    return false;
                }

                card = next;
            }

            return false;
        }

        foreach (var row in rows.Where(r => r.CreditId is null || !OwedTo(r.CardId, r.CreditCard) || r.CreditAmount != r.AmountMinor || r.CreditCurrency != r.Currency
            || r.FromStore != -r.AmountMinor))
        {
            differences.Add(new LedgerDifference(
                LedgerDifference.RefundPostingMismatch,
                row.RefundId,
                $"a refund credit of {FormatAmount(row.AmountMinor, row.Currency)} to card {MaskCard(row.CardId)}, from {store}{row.StoreId}",
                row.CreditId is null
                    ? "no card credit"
                    : $"credit {row.CreditId} of {FormatAmount(row.CreditAmount ?? 0, row.CreditCurrency ?? row.Currency)} to card {MaskCard(row.CreditCard ?? "")}, store {FormatAmount(row.FromStore, row.Currency)}",
                $"{row.State} refund of {FormatAmount(row.AmountMinor, row.Currency)} by store {row.StoreId}"));
        }

        var settlements = await connection.QueryAsync<(string SettlementId, long Paid, string Currency, long Refunded)>(Command(
            """
            SELECT s.settlement_id, s.amount_minor, s.currency, CAST(SUM(r.amount_minor) AS BIGINT) AS refunded
            FROM settlements s JOIN refunds r ON r.settlement_id = s.settlement_id
            GROUP BY s.settlement_id, s.amount_minor, s.currency
            HAVING SUM(r.amount_minor) > s.amount_minor
            ORDER BY s.settlement_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var settlement in settlements)
        {
            differences.Add(new LedgerDifference(
                LedgerDifference.RefundPostingMismatch,
                settlement.SettlementId,
                $"at most {FormatAmount(settlement.Paid, settlement.Currency)} refunded",
                FormatAmount(settlement.Refunded, settlement.Currency),
                "the settlement's refunds add up to more than it paid"));
        }
    }

    /// <summary>
    /// Every transfer and cash-out posted the way its state says. A cash-out, under its id: the
    /// paying card's account minus the amount once the DEBIT is proved (debited, paid, returned),
    /// nothing before or when abandoned, and a paid one's amount on <c>issued</c>. A transfer that
    /// the card ran, and a cash-out the bank returned, owe one card credit of the amount (its entry,
    /// to <c>pending</c>, is the card credit's, under its own reference); any other, none. And the
    /// <c>payouts</c> account holds exactly the cash-outs waiting for clearing.
    /// </summary>
    private static async Task DecreasePostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var due = new Dictionary<string, long>(StringComparer.Ordinal);
        var kinds = new[]
        {
            ("transfers", "transfer_id", Protocol.Messages.ValueUpdatePurposes.Transfer, LedgerDifference.TransferPostingMismatch),
            ("cashouts", "cashout_id", Protocol.Messages.ValueUpdatePurposes.Refund, LedgerDifference.CashOutPostingMismatch),
        };
        foreach (var (table, key, purpose, kind) in kinds)
        {
            var rows = await connection.QueryAsync<(string Id, string State, string CardId, long AmountMinor, string Currency, long FromCard, long ToIssued, long Credits)>(Command(
                $"""
                SELECT t.{key}, t.state, t.card_id, t.amount_minor, t.currency,
                       CAST(COALESCE(SUM(CASE WHEN j.account = '{s_cardPrefix}' || t.card_id AND j.currency = t.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS from_card,
                       CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.Issued.Text}' AND j.currency = t.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS to_issued,
                       (SELECT CAST(COUNT(*) AS BIGINT) FROM card_credits c
                        WHERE c.purpose = '{purpose}' AND c.source_id = t.{key} AND c.amount_minor = t.amount_minor AND c.currency = t.currency) AS credits
                FROM {table} t LEFT JOIN journal j ON j.reference = t.{key}
                GROUP BY t.{key}, t.state, t.card_id, t.amount_minor, t.currency
                ORDER BY t.{key}
                """,
                transaction, cancellationToken)).ConfigureAwait(false);
            foreach (var row in rows)
            {
                // A transfer's debit is the card credit's entry; a cash-out's is its own.
                var (debited, paid, owed) = table == "transfers"
                    ? (false, false, Decreases.TransferStates.Machine.TryParse(row.State, out var transfer) && transfer == Decreases.TransferState.Debited)
                    : (Decreases.CashOutStates.Machine.TryParse(row.State, out var cashOut) && Decreases.CashOutStates.Posted.Contains(cashOut),
                        cashOut == Decreases.CashOutState.Paid, cashOut == Decreases.CashOutState.Returned);
                if (table == "cashouts" && Decreases.CashOutStates.Machine.TryParse(row.State, out var state) && state == Decreases.CashOutState.Debited)
                {
                    due[row.Currency] = checked(due.GetValueOrDefault(row.Currency) + row.AmountMinor);
                }

                var (fromCard, toIssued, credits) = (debited ? -row.AmountMinor : 0, paid ? row.AmountMinor : 0, owed ? 1 : 0);
                if (row.FromCard != fromCard || row.ToIssued != toIssued || row.Credits != credits)
                {
                    differences.Add(new LedgerDifference(
                        kind,
                        row.Id,
                        $"card:{MaskCard(row.CardId)} {FormatAmount(fromCard, row.Currency)}, issued {FormatAmount(toIssued, row.Currency)}, {credits} card credit(s)",
                        $"card:{MaskCard(row.CardId)} {FormatAmount(row.FromCard, row.Currency)}, issued {FormatAmount(row.ToIssued, row.Currency)}, {row.Credits} card credit(s)",
                        $"{row.State} {(table == "transfers" ? "transfer" : "cash-out")} of {FormatAmount(row.AmountMinor, row.Currency)} by card {MaskCard(row.CardId)}"));
                }
            }
        }

        var accounts = await connection.QueryAsync<(string Currency, long Balance)>(Command(
            $"SELECT currency, CAST(SUM(amount_minor) AS BIGINT) AS balance FROM journal WHERE account = '{Account.Payouts.Text}' GROUP BY currency ORDER BY currency",
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var currency in accounts.Select(a => a.Currency).Union(due.Keys).Distinct(StringComparer.Ordinal))
        {
            var balance = accounts.Where(a => a.Currency == currency).Sum(a => a.Balance);
            if (balance != due.GetValueOrDefault(currency))
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.CashOutPostingMismatch,
                    currency,
                    FormatAmount(due.GetValueOrDefault(currency), currency),
                    FormatAmount(balance, currency),
                    $"the {Account.Payouts} account is not the sum of the payouts waiting for clearing"));
            }
        }
    }

    /// <summary>
    /// Every carry of a replacement is owed as one card credit (purpose <c>replacement</c>, source
    /// the carry) of its amount, posted from the old card's account (a balance) or from
    /// <c>reversals</c> (a return); the credit's own postings are checked with the card credits.
    /// </summary>
    private static async Task CarryPostingsAsync(
        DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync<(string CarryId, string Source, string OldCard, long AmountMinor, string Currency, long Credits, long FromSource)>(Command(
            $"""
            SELECT k.carry_id, k.source, r.old_card_id, k.amount_minor, k.currency,
                   (SELECT CAST(COUNT(*) AS BIGINT) FROM card_credits c
                    WHERE c.purpose = '{Protocol.Messages.ValueUpdatePurposes.Replacement}' AND c.source_id = k.carry_id AND c.amount_minor = k.amount_minor AND c.currency = k.currency) AS credits,
                   (SELECT CAST(COALESCE(SUM(j.amount_minor), 0) AS BIGINT) FROM card_credits c JOIN journal j ON j.reference = c.credit_id
                    WHERE c.purpose = '{Protocol.Messages.ValueUpdatePurposes.Replacement}' AND c.source_id = k.carry_id AND j.currency = k.currency
                      AND j.account = CASE WHEN k.source = 'balance' THEN '{s_cardPrefix}' || r.old_card_id ELSE '{Account.Reversals.Text}' END) AS from_source
            FROM card_carries k JOIN card_replacements r ON r.replacement_id = k.replacement_id
            ORDER BY k.carry_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var row in rows.Where(r => r.Credits != 1 || r.FromSource != -r.AmountMinor))
        {
            var from = row.Source == "balance" ? $"card:{MaskCard(row.OldCard)}" : Account.Reversals.ToString();
            differences.Add(new LedgerDifference(
                LedgerDifference.ReplacementPostingMismatch,
                row.CarryId,
                $"one replacement credit of {FormatAmount(row.AmountMinor, row.Currency)}, from {from}",
                $"{row.Credits} credit(s), {from} {FormatAmount(row.FromSource, row.Currency)}",
                $"{row.Source} carried from card {MaskCard(row.OldCard)} to its replacement"));
        }
    }

    private static void CheckPostings(SettlementLineRow settlement, List<(string EntryId, Line Line)> lines, List<LedgerDifference> differences)
    {
        var amount = settlement.AmountMinor;
        var currency = settlement.Currency;
        // Each way the transition table reaches the state posts its entries, all under the settlement's
        // id: reversing, for one, is a debit found after expiry, or a disputed settlement's amount returned.
        var alternatives = SettlementStates.PostingsTo(SettlementStates.Parse(settlement.State)).Select(way => way.Select(posting =>
        {
            var (from, to) = posting.Between(settlement.CardId, settlement.StoreId);
            return new Line[] { new(from.Text, -amount, currency), new(to.Text, amount, currency) };
        }).ToArray()).ToArray();
        var actual = lines.GroupBy(l => l.EntryId, l => l.Line, StringComparer.Ordinal).Select(g => g.ToArray()).ToArray();
        if (alternatives.Any(expected => Canonical(actual).SequenceEqual(Canonical(expected), StringComparer.Ordinal)))
        {
            return;
        }

        // The first alternative is the usual one, and the one a difference is described against.
        var usual = alternatives[0];
        differences.Add(new LedgerDifference(
            LedgerDifference.SettlementPostingMismatch,
            settlement.SettlementId,
            Describe(usual),
            Describe(actual),
            $"{settlement.State} settlement of {FormatAmount(amount, currency)} by card {MaskCard(settlement.CardId)} at store {settlement.StoreId}: "
            + $"expected {usual.Length} journal entr{(usual.Length == 1 ? "y" : "ies")}, found {actual.Length}"));
    }

    /// <summary>Entries as a sorted list of sorted lines: equal for the same postings in any order.</summary>
    private static IEnumerable<string> Canonical(IEnumerable<Line[]> entries) =>
        entries.Select(e => string.Join('\u001E', e.Select(l => $"{l.Account}\u001F{l.AmountMinor.ToString(CultureInfo.InvariantCulture)}\u001F{l.Currency}").Order(StringComparer.Ordinal)))
            .Order(StringComparer.Ordinal);

    /// <summary>Postings as they may be shown: card numbers masked, at most a few entries.</summary>
    private static string Describe(IReadOnlyList<Line[]> entries)
    {
        const int Shown = 4;
        if (entries.Count == 0)
        {
            return "no journal lines";
        }

        var described = entries.Take(Shown).Select(e => "[" + string.Join(", ", e.OrderBy(l => l.AmountMinor).ThenBy(l => l.Account, StringComparer.Ordinal).Select(l =>
            $"{Account.Shown(l.Account)} {(l.AmountMinor > 0 ? "+" : "")}{FormatAmount(l.AmountMinor, l.Currency)}")) + "]");
        return string.Join(" ", described) + (entries.Count > Shown ? $" and {entries.Count - Shown} more" : "");
    }

    private readonly record struct Line(string Account, long AmountMinor, string Currency);

    private sealed class SettlementLineRow
    {
        public required string SettlementId { get; init; }

        public required string State { get; init; }

        public required string CardId { get; init; }

        public required string StoreId { get; init; }

        public required long AmountMinor { get; init; }

        public required string Currency { get; init; }

        public string? EntryId { get; init; }

        public string? Account { get; init; }

        public long? LineAmountMinor { get; init; }

        public string? LineCurrency { get; init; }
    }
}

/// <summary>One currency's books: what was issued and who it is owed to now, in minor units.</summary>
/// <param name="Currency">The currency's code.</param>
/// <param name="Issued">Value put into circulation: minus the <c>issued</c> account's balance.</param>
/// <param name="Cards">The sum of the <c>card:</c> accounts: owed to card holders.</param>
/// <param name="Stores">The sum of the <c>store:</c> accounts: owed to stores.</param>
/// <param name="Reversals">The <c>reversals</c> account: debits of settlements that did not complete, owed back to their cards.</param>
internal sealed record LedgerCurrencyTotals(string Currency, long Issued, long Cards, long Stores, long Reversals)
{
    /// <summary>The <c>pending</c> account: value owed to cards that they take at their next sync.</summary>
    public long Pending { get; init; }

    /// <summary>The <c>payouts</c> account: cash-outs owed to bank accounts until cleared.</summary>
    public long Payouts { get; init; }

    /// <summary>The <c>fees</c> account: the operator's revenue from the stores' fees (what it owes itself).</summary>
    public long Fees { get; init; }

    /// <summary>The <c>storepayouts</c> account: what clearing runs owe the stores' bank accounts until paid.</summary>
    public long StorePayouts { get; init; }

    /// <summary>Cards + stores + reversals + pending + payouts + fees + storepayouts.</summary>
    public long Owed => checked(Cards + Stores + Reversals + Pending + Payouts + Fees + StorePayouts);

    /// <summary>Whether everything issued is owed to someone, no more and no less.</summary>
    public bool IsBalanced => Owed == Issued;
}

/// <summary>One invariant that does not hold.</summary>
/// <param name="Kind">What was checked: one of the constants of this record.</param>
/// <param name="Subject">
/// What it concerns: an entry id, a currency, a settlement id, or for <see cref="CardShadowMismatch"/>
/// the full card number — for an operator to act on, never for a log; <see cref="ToText"/> and
/// <see cref="ToString"/> mask it.
/// </param>
/// <param name="Expected">What the invariant says, as a person reads it (card numbers masked).</param>
/// <param name="Actual">What the registry holds (card numbers masked).</param>
/// <param name="Detail">A sentence for the operator (card numbers masked).</param>
internal sealed record LedgerDifference(string Kind, string Subject, string Expected, string Actual, string Detail)
{
    /// <summary>An entry whose lines do not sum to zero in a currency.</summary>
    public const string EntryUnbalanced = "entry.unbalanced";

    /// <summary>A card account that differs from the card's purse shadow (<c>card_purses</c>).</summary>
    public const string CardShadowMismatch = "card.shadow_mismatch";

    /// <summary>Cards + stores + reversals differ from what was issued, in a currency.</summary>
    public const string LedgerNotBalanced = "ledger.not_balanced";

    /// <summary>A settlement whose journal entries are not what its state requires.</summary>
    public const string SettlementPostingMismatch = "settlement.posting_mismatch";

    /// <summary>A top-up whose journal entries are not what its state requires, or a <c>topups</c> account that is not minus what the cards took.</summary>
    public const string TopUpPostingMismatch = "topup.posting_mismatch";

    /// <summary>A refund that is not owed to its card as one card credit of its amount from its store, or a settlement refunded beyond what it paid.</summary>
    public const string RefundPostingMismatch = "refund.posting_mismatch";

    /// <summary>A card credit whose journal entries do not match its state, or a <c>pending</c> account that is not what cards are owed.</summary>
    public const string CardCreditPostingMismatch = "card_credit.posting_mismatch";

    /// <summary>A transfer whose journal entries are not what its state requires.</summary>
    public const string TransferPostingMismatch = "transfer.posting_mismatch";

    /// <summary>A cash-out whose journal entries are not what its state requires, or a <c>payouts</c> account that is not the sum of the payouts due.</summary>
    public const string CashOutPostingMismatch = "cashout.posting_mismatch";

    /// <summary>
    /// A store payout whose journal entries are not what its run cleared and its state say, a
    /// <c>fees</c> or <c>storepayouts</c> account that is not the sum of the payouts', or a store
    /// account that is not its sales less its refunds not cleared yet.
    /// </summary>
    public const string ClearingPostingMismatch = "clearing.posting_mismatch";
    /// <summary>A replacement's carry that is not owed to the new card as one replacement credit of its amount from where it was carried.</summary>
    public const string ReplacementPostingMismatch = "replacement.posting_mismatch";

    /// <summary>The subject as it may be shown: a card number masked.</summary>
    public string DisplaySubject => Kind == CardShadowMismatch ? Ledger.MaskCard(Subject) : Subject;

    /// <summary>One line for a person.</summary>
    public string ToText() => $"{Kind} {DisplaySubject}: expected {Expected}, actual {Actual}; {Detail}";

    /// <summary>Masked, as <see cref="ToText"/>.</summary>
    public override string ToString() => ToText();
}

/// <summary>
/// A completed settlement whose store refused its ACN (or could not be told) until the sweeper
/// stopped: the operator decides to return the amount to the card or to tell the store again.
/// </summary>
internal sealed record DisputedSettlement
{
    public required string SettlementId { get; init; }

    public required string StoreId { get; init; }

    public required string OrderNo { get; init; }

    public required long AmountMinor { get; init; }

    public required string Currency { get; init; }

    public required long StoreAttempts { get; init; }

    /// <summary>The store's last answer, e.g. <c>HTTP 422 completion.mismatch</c>.</summary>
    public string? StoreAnswer { get; init; }

    public string? DisputedAt { get; init; }

    /// <summary>One line for a person.</summary>
    public string ToText() =>
        $"settlement.disputed {SettlementId}: {Ledger.FormatAmount(AmountMinor, Currency)}, order {OrderNo} of store {StoreId}; "
        + $"the store's last answer after {StoreAttempts} attempt(s): {StoreAnswer ?? "none"}; disputed since {DisputedAt}";
}

/// <summary>What <see cref="Ledger.ReconcileAsync"/> found: the books per currency, every difference, and the settlements that wait for a decision.</summary>
internal sealed record LedgerReport(IReadOnlyList<LedgerCurrencyTotals> Currencies, IReadOnlyList<LedgerDifference> Differences)
{
    /// <summary>Every invariant holds.</summary>
    public bool IsClean => Differences.Count == 0;

    /// <summary>Disputed settlements: the operator must return each to its card or tell its store again.</summary>
    public IReadOnlyList<DisputedSettlement> Disputed { get; init; } = [];

    /// <summary>A short table for a person: a line per currency, then a line per difference. Card numbers are masked.</summary>
    public string ToText()
    {
        var text = new StringBuilder();
        text.AppendLine(IsClean ? "Ledger: clean." : $"Ledger: {Differences.Count} difference{(Differences.Count == 1 ? "" : "s")}.");
        if (Currencies.Count == 0)
        {
            text.AppendLine("The journal is empty.");
        }
        else
        {
            // The payouts account appears once it has held something.
            var payouts = Currencies.Any(c => c.Payouts != 0);
            // So do the clearing accounts, once a run has cleared something.
            var clearing = Currencies.Any(c => c.Fees != 0 || c.StorePayouts != 0);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{"currency",-8} {"issued",18} {"cards",18} {"stores",18} {"reversals",18} {"pending",18}{(payouts ? $" {"payouts",18}" : "")}{(clearing ? $" {"fees",18} {"storepayouts",18}" : "")}  balanced");
            foreach (var c in Currencies)
            {
                var paidOut = (payouts ? $" {Ledger.FormatUnits(c.Payouts, c.Currency),18}" : "")
                    + (clearing ? $" {Ledger.FormatUnits(c.Fees, c.Currency),18} {Ledger.FormatUnits(c.StorePayouts, c.Currency),18}" : "");
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"{c.Currency,-8} {Ledger.FormatUnits(c.Issued, c.Currency),18} {Ledger.FormatUnits(c.Cards, c.Currency),18} {Ledger.FormatUnits(c.Stores, c.Currency),18} {Ledger.FormatUnits(c.Reversals, c.Currency),18} {Ledger.FormatUnits(c.Pending, c.Currency),18}{paidOut}  {(c.IsBalanced ? "yes" : "NO")}");
            }
        }

        foreach (var difference in Differences)
        {
            text.AppendLine(difference.ToText());
        }

        if (Disputed.Count > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{Disputed.Count} disputed settlement{(Disputed.Count == 1 ? "" : "s")} wait for a decision (return to the card, or tell the store again):");
            foreach (var disputed in Disputed)
            {
                text.AppendLine(disputed.ToText());
            }
        }

        return text.ToString();
    }

    /// <summary>As <see cref="ToText"/>.</summary>
    public override string ToString() => ToText();
}
