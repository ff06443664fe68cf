using System.Data.Common;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;

namespace OpenPurse.Operator.Clearing;

/// <summary>
/// The ledger's invariants of clearing (docs/reliability.md, "Clearing"), checked by
/// <see cref="Ledger.ReconcileAsync"/> in its snapshot:
/// <list type="bullet">
/// <item>each store payout posted what its run cleared and its state say, under its id: store → fees
/// of its fee, store → storepayouts of its net (the other way for a net below zero), and once paid
/// storepayouts → issued (issued → storepayouts); and its cleared items add up to its sales, refunds and fee;</item>
/// <item>the <c>fees</c> account is the sum of the payouts' fees, the <c>storepayouts</c> account the
/// sum of the nets of the payouts due;</item>
/// <item>the account of a store a run has cleared is its sales (settlements it is paid for) less its
/// refunds that no run has cleared yet.</item>
/// </list>
/// </summary>
internal static class ClearingLedger
{
    private const int QueryTimeoutSeconds = 600;

    public static async Task CheckAsync(DbConnection connection, DbTransaction transaction, List<LedgerDifference> differences, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(differences);
        var store = Account.PrefixOf(AccountKind.Store);
        var due = StorePayoutStates.Machine.Text(StorePayoutState.Due);
        var paid = StorePayoutStates.Machine.Text(StorePayoutState.Paid);
        var payouts = await connection.QueryAsync<PayoutPostings>(Command(
            $"""
            SELECT p.payout_id AS PayoutId, p.store_id AS StoreId, p.currency AS Currency, p.sales_minor AS Sales, p.refunds_minor AS Refunds,
                   p.fee_minor AS Fee, p.net_minor AS Net, p.state AS State,
                   CAST(COUNT(j.entry_id) AS BIGINT) AS Lines,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.Fees.Text}' AND j.currency = p.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS ToFees,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{store}' || p.store_id AND j.currency = p.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS ToStore,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.StorePayouts.Text}' AND j.currency = p.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS ToStorePayouts,
                   CAST(COALESCE(SUM(CASE WHEN j.account = '{Account.Issued.Text}' AND j.currency = p.currency THEN j.amount_minor ELSE 0 END), 0) AS BIGINT) AS ToIssued,
                   (SELECT CAST(COALESCE(SUM(CASE WHEN c.kind = 'sale' THEN c.amount_minor ELSE 0 END), 0) AS BIGINT) FROM cleared_items c WHERE c.payout_id = p.payout_id) AS ItemSales,
                   (SELECT CAST(COALESCE(SUM(CASE WHEN c.kind = 'refund' THEN c.amount_minor ELSE 0 END), 0) AS BIGINT) FROM cleared_items c WHERE c.payout_id = p.payout_id) AS ItemRefunds,
                   (SELECT CAST(COALESCE(SUM(c.fee_minor), 0) AS BIGINT) FROM cleared_items c WHERE c.payout_id = p.payout_id) AS ItemFees
            FROM store_payouts p LEFT JOIN journal j ON j.reference = p.payout_id
            GROUP BY p.payout_id, p.store_id, p.currency, p.sales_minor, p.refunds_minor, p.fee_minor, p.net_minor, p.state
            ORDER BY p.payout_id
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        var fees = new Dictionary<string, long>(StringComparer.Ordinal);
        var owed = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var p in payouts)
        {
            fees[p.Currency] = checked(fees.GetValueOrDefault(p.Currency) + p.Fee);
            var isDue = p.State == due;
            var isPaid = p.State == paid;
            if (isDue)
            {
                owed[p.Currency] = checked(owed.GetValueOrDefault(p.Currency) + p.Net);
            }

            var lines = (p.Fee > 0 ? 2 : 0) + (p.Net != 0 ? 2 : 0) + (isPaid ? 2 : 0);
            var expected = (Fees: p.Fee, Store: checked(-p.Fee - p.Net), StorePayouts: isDue ? p.Net : 0, Issued: isPaid ? p.Net : 0);
            if (p.Lines != lines || (p.ToFees, p.ToStore, p.ToStorePayouts, p.ToIssued) != expected
                || (p.ItemSales, p.ItemRefunds, p.ItemFees) != (p.Sales, p.Refunds, p.Fee))
            {
                differences.Add(new LedgerDifference(
                    LedgerDifference.ClearingPostingMismatch,
                    p.PayoutId,
                    $"{lines} line(s): fees {Ledger.FormatAmount(expected.Fees, p.Currency)}, {store}{p.StoreId} {Ledger.FormatAmount(expected.Store, p.Currency)}, "
                    + $"storepayouts {Ledger.FormatAmount(expected.StorePayouts, p.Currency)}, issued {Ledger.FormatAmount(expected.Issued, p.Currency)}; items: sales {p.Sales}, refunds {p.Refunds}, fees {p.Fee}",
                    $"{p.Lines} line(s): fees {Ledger.FormatAmount(p.ToFees, p.Currency)}, {store}{p.StoreId} {Ledger.FormatAmount(p.ToStore, p.Currency)}, "
                    + $"storepayouts {Ledger.FormatAmount(p.ToStorePayouts, p.Currency)}, issued {Ledger.FormatAmount(p.ToIssued, p.Currency)}; items: sales {p.ItemSales}, refunds {p.ItemRefunds}, fees {p.ItemFees}",
                    $"{p.State} payout to store {p.StoreId} of {Ledger.FormatAmount(p.Net, p.Currency)}"));
            }
        }

        foreach (var (account, expected, what) in new[] { (Account.Fees, fees, "the sum of the store payouts' fees"), (Account.StorePayouts, owed, "the sum of the store payouts due") })
        {
            var balances = (await connection.QueryAsync<(string Currency, long Balance)>(Command(
                $"SELECT currency, CAST(SUM(amount_minor) AS BIGINT) AS balance FROM journal WHERE account = '{account.Text}' GROUP BY currency ORDER BY currency",
                transaction, cancellationToken)).ConfigureAwait(false)).ToList();
            foreach (var currency in balances.Select(b => b.Currency).Union(expected.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                var balance = balances.Where(b => b.Currency == currency).Sum(b => b.Balance);
                if (balance != expected.GetValueOrDefault(currency))
                {
                    differences.Add(new LedgerDifference(
                        LedgerDifference.ClearingPostingMismatch,
                        currency,
                        Ledger.FormatAmount(expected.GetValueOrDefault(currency), currency),
                        Ledger.FormatAmount(balance, currency),
                        $"the {account} account is not {what}"));
                }
            }
        }

        // Stores a run has cleared: their accounts hold exactly what no run has cleared yet.
        var stores = await connection.QueryAsync<(string StoreId, string Currency, long Expected, long Actual)>(Command(
            $"""
            SELECT store_id, currency, CAST(SUM(expected) AS BIGINT) AS expected, CAST(SUM(actual) AS BIGINT) AS actual
            FROM (SELECT SUBSTR(account, {store.Length + 1}) AS store_id, currency, 0 AS expected, amount_minor AS actual
                  FROM journal WHERE SUBSTR(account, 1, {store.Length}) = '{store}'
                  UNION ALL
                  SELECT s.store_id, s.currency, s.amount_minor, 0 FROM settlements s
                  WHERE s.state {SettlementStates.In(SettlementStates.PaidToStore)} AND NOT EXISTS (SELECT 1 FROM cleared_items c WHERE c.item_id = s.settlement_id)
                  UNION ALL
                  SELECT r.store_id, r.currency, -r.amount_minor, 0 FROM refunds r
                  WHERE NOT EXISTS (SELECT 1 FROM cleared_items c WHERE c.item_id = r.refund_id)) AS sides
            WHERE store_id IN (SELECT store_id FROM store_payouts)
            GROUP BY store_id, currency
            HAVING SUM(expected) <> SUM(actual)
            ORDER BY store_id, currency
            """,
            transaction, cancellationToken)).ConfigureAwait(false);
        foreach (var s in stores)
        {
            differences.Add(new LedgerDifference(
                LedgerDifference.ClearingPostingMismatch,
                store + s.StoreId,
                Ledger.FormatAmount(s.Expected, s.Currency),
                Ledger.FormatAmount(s.Actual, s.Currency),
                "the store's account is not its sales less its refunds that no clearing run has cleared (a cleared settlement returned to its card later shows here)"));
        }
    }

    private static CommandDefinition Command(string sql, DbTransaction transaction, CancellationToken cancellationToken) =>
        new(sql, transaction: transaction, commandTimeout: QueryTimeoutSeconds, cancellationToken: cancellationToken);

    private sealed record PayoutPostings
    {
        public required string PayoutId { get; init; }

        public required string StoreId { get; init; }

        public required string Currency { get; init; }

        public required long Sales { get; init; }

        public required long Refunds { get; init; }

        public required long Fee { get; init; }

        public required long Net { get; init; }

        public required string State { get; init; }

        public required long Lines { get; init; }

        public required long ToFees { get; init; }

        public required long ToStore { get; init; }

        public required long ToStorePayouts { get; init; }

        public required long ToIssued { get; init; }

        public required long ItemSales { get; init; }

        public required long ItemRefunds { get; init; }

        public required long ItemFees { get; init; }
    }
}
