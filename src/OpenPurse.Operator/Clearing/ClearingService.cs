using System.Data.Common;
using System.Globalization;
using System.Text;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Clearing;

/// <summary>
/// Clearing: what the operator owes each store (statements for a period, a summary over all
/// stores), the stores' fees and bank accounts, clearing runs that move what is owed to the
/// stores' payouts, and the payouts' export for the bank and their marking as paid
/// (docs/operations.md, "Clearing"). The station's <c>clearing</c> commands and the admin API's
/// <c>/v1/admin/clearing</c> both come here.
/// </summary>
/// <remarks>
/// A run takes the clearing lock (an advisory lock on PostgreSQL, the single writer on SQLite) in
/// each of its transactions, so runs on two nodes take turns; and a settlement or refund is cleared
/// at most once by the primary key of <c>cleared_items</c> whatever happens.
/// </remarks>
internal sealed partial class ClearingService(Database database, TimeProvider time, ILogger<ClearingService> logger)
{
    /// <summary>The largest fixed fee per sale, in minor units.</summary>
    public const long FixedFeeMax = 100_000_000;

    /// <summary>Basis points in a whole: 10000 is the whole sale.</summary>
    public const long BasisPointsMax = 10_000;

    /// <summary>The longest account holder's name, as for cash-outs.</summary>
    public const int HolderLengthMax = 70;

    /// <summary>The most payouts one list or export holds, as for cash-outs.</summary>
    public const int ListMax = 1000;

    private const string Sale = "sale";
    private const string Refund = "refund";

    // "OPURSE", clearing: any constant no other lock of the registry uses.
    private const long ClearingLockKey = 0x4F50_5552_5345_0011;

    /// <summary>
    /// The operator's fee on a sale of <paramref name="amountMinor"/>: <paramref name="basisPoints"/>
    /// of it rounded half up to a minor unit (a half goes to the operator), plus
    /// <paramref name="fixedMinor"/>, never more than the sale. Checked arithmetic throughout.
    /// </summary>
    public static long FeeOf(long amountMinor, long basisPoints, long fixedMinor)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(amountMinor);
        ArgumentOutOfRangeException.ThrowIfNegative(basisPoints);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(basisPoints, BasisPointsMax);
        ArgumentOutOfRangeException.ThrowIfNegative(fixedMinor);
        // amount × basis points fits 128 bits for any amount; divided by 10000 it is at most the amount.
        var share = checked((long)(((Int128)amountMinor * basisPoints + BasisPointsMax / 2) / BasisPointsMax));
        var fee = checked(share + fixedMinor);
        return Math.Min(fee, amountMinor);
    }

    /// <summary>The store's terms; a refusal when no such store.</summary>
    public async Task<Result<StoreClearingTerms>> TermsAsync(string storeId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await StoreExistsAsync(connection, null, storeId).ConfigureAwait(false)
            ? await ReadTermsAsync(connection, null, storeId).ConfigureAwait(false)
            : UnknownStore();
    }

    /// <summary>Sets a store's fee: basis points of each sale and a fixed part per sale, in minor units.</summary>
    public async Task<Result<StoreClearingTerms>> SetFeeAsync(string? storeId, long basisPoints, long fixedMinor, CancellationToken cancellationToken)
    {
        if (basisPoints is < 0 or > BasisPointsMax || fixedMinor is < 0 or > FixedFeeMax)
        {
            return new Refusal(ProblemCode.ClearingFeeInvalid, $"basis points are 0 to {BasisPointsMax}, the fixed fee 0 to {FixedFeeMax} minor units per sale.");
        }

        return await ChangeTermsAsync(storeId, "fee_basis_points = @basisPoints, fee_fixed_minor = @fixedMinor", new { basisPoints, fixedMinor }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sets the bank account a store's payouts go to: a checked IBAN (ISO 13616) and its holder's name.</summary>
    public async Task<Result<StoreClearingTerms>> SetBankAsync(string? storeId, string? iban, string? holder, CancellationToken cancellationToken)
    {
        var error = Iban.TryNormalize(iban, out var normalized);
        if (error != IbanError.None)
        {
            // The detail never repeats what was typed: it is a real account's number.
            return new Refusal(ProblemCode.IbanInvalid, error switch
            {
                IbanError.UnknownCountry => "The IBAN's country has no IBANs.",
                IbanError.WrongLength => "The IBAN does not have its country's length.",
                IbanError.CheckDigits => "The IBAN's check digits do not match: a character is mistyped.",
                _ => "An IBAN is two letters, two check digits and up to 30 letters or digits.",
            });
        }

        var name = holder?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > HolderLengthMax || name.Any(char.IsControl))
        {
            return new Refusal(ProblemCode.ClearingHolderInvalid, $"The account holder's name is required: up to {HolderLengthMax} characters, no control characters.");
        }

        var changed = await ChangeTermsAsync(storeId, "iban = @normalized, account_holder = @name", new { normalized, name }, cancellationToken).ConfigureAwait(false);
        if (changed.Value is { } terms)
        {
            LogBankSet(terms.StoreId, terms.Iban);
        }

        return changed;
    }

    /// <summary>A store's statement for <paramref name="period"/>: its sales less refunds less fees, line by line and per currency.</summary>
    public async Task<Result<StoreStatementView>> StatementAsync(string? storeId, ClearingPeriod period, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginReadAsync(connection, cancellationToken).ConfigureAwait(false);
        var found = IsStoreId(storeId)
            ? (await connection.QueryAsync<(string StoreId, string Name, string? MallId)>(
                "SELECT store_id, name, mall_id FROM stores WHERE store_id = @storeId", new { storeId }, transaction).ConfigureAwait(false)).FirstOrDefault()
            : default;
        if (found.StoreId is null)
        {
            return UnknownStore();
        }

        var lines = await LinesAsync(connection, transaction, found.StoreId, period).ConfigureAwait(false);
        var members = await connection.QueryAsync<string>("SELECT store_id FROM stores WHERE mall_id = @storeId AND store_id <> @storeId ORDER BY store_id", new { storeId }, transaction).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new StoreStatementView(found.StoreId, found.Name, found.MallId, ClearingPeriod.Text(period.From), ClearingPeriod.Text(period.To), lines, Totals(lines), [.. members]);
    }

    /// <summary>
    /// The statement as CSV (RFC 4180, safe to open in a spreadsheet):
    /// <c>store,kind,id,order_no,time,amount,fee,currency,run</c>, a line per sale and refund, then
    /// per currency the lines <c>sales</c>, <c>refunds</c>, <c>fees</c> and <c>owed</c> with the totals.
    /// </summary>
    public static string ToCsv(StoreStatementView statement)
    {
        ArgumentNullException.ThrowIfNull(statement);
        var text = new StringBuilder("store,kind,id,order_no,time,amount,fee,currency,run\n");
        var store = Csv(statement.StoreId);
        foreach (var line in statement.Lines)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{store},{line.Kind},{line.Id},{Csv(line.OrderNo)},{line.At},{Ledger.FormatUnits(line.AmountMinor, line.Currency)},{Ledger.FormatUnits(line.FeeMinor, line.Currency)},{line.Currency},{line.RunId}\n");
        }

        foreach (var total in statement.Totals)
        {
            text.Append(CultureInfo.InvariantCulture, $"{store},sales,,,,{Ledger.FormatUnits(total.Sales, total.Currency)},,{total.Currency},\n");
            text.Append(CultureInfo.InvariantCulture, $"{store},refunds,,,,{Ledger.FormatUnits(total.Refunds, total.Currency)},,{total.Currency},\n");
            text.Append(CultureInfo.InvariantCulture, $"{store},fees,,,,,{Ledger.FormatUnits(total.Fees, total.Currency)},{total.Currency},\n");
            text.Append(CultureInfo.InvariantCulture, $"{store},owed,,,,{Ledger.FormatUnits(total.Owed, total.Currency)},,{total.Currency},\n");
        }

        return text.ToString();
    }

    /// <summary>The summary over all stores for <paramref name="period"/>, with the cash-outs' and the store payouts' paid and due.</summary>
    public async Task<ClearingSummary> SummaryAsync(ClearingPeriod period, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginReadAsync(connection, cancellationToken).ConfigureAwait(false);
        var stores = new List<SummaryStore>();
        var all = new List<StatementLine>();
        foreach (var (storeId, mallId) in await connection.QueryAsync<(string, string?)>("SELECT store_id, mall_id FROM stores ORDER BY store_id", transaction: transaction).ConfigureAwait(false))
        {
            var lines = await LinesAsync(connection, transaction, storeId, period).ConfigureAwait(false);
            if (lines.Count > 0)
            {
                stores.Add(new SummaryStore(storeId, mallId, Totals(lines)));
                all.AddRange(lines);
            }
        }

        var parameters = new { from = period.FromStored, to = period.ToStored };
        var cashOuts = await PayoutTotalsAsync(connection, transaction,
            "SELECT currency AS Currency, CAST(COUNT(*) AS BIGINT) AS Count, CAST(SUM(amount_minor) AS BIGINT) AS Minor FROM cashouts WHERE state = 'paid' AND cleared_at >= @from AND cleared_at < @to GROUP BY currency",
            "SELECT currency AS Currency, CAST(COUNT(*) AS BIGINT) AS Count, CAST(SUM(amount_minor) AS BIGINT) AS Minor FROM cashouts WHERE state = 'debited' AND debited_at < @to GROUP BY currency",
            parameters).ConfigureAwait(false);
        var storePayouts = await PayoutTotalsAsync(connection, transaction,
            $"SELECT currency AS Currency, CAST(COUNT(*) AS BIGINT) AS Count, CAST(SUM(net_minor) AS BIGINT) AS Minor FROM store_payouts WHERE state {StorePayoutStates.Machine.In(StorePayoutState.Paid)} AND paid_at >= @from AND paid_at < @to GROUP BY currency",
            $"SELECT currency AS Currency, CAST(COUNT(*) AS BIGINT) AS Count, CAST(SUM(net_minor) AS BIGINT) AS Minor FROM store_payouts WHERE state {StorePayoutStates.Machine.In(StorePayoutState.Due)} AND created_at < @to GROUP BY currency",
            parameters).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new ClearingSummary(ClearingPeriod.Text(period.From), ClearingPeriod.Text(period.To), stores, Totals(all), cashOuts, storePayouts);
    }

    /// <summary>
    /// The clearing run that ends at 00:00 UTC of <paramref name="to"/>: for every store, every
    /// completed settlement and every refund before the end that no run cleared yet, one
    /// transaction per store. The same end again answers the same run (finishing it first if a
    /// node stopped midway); an end before the last run's is refused.
    /// </summary>
    public async Task<Result<ClearingRunView>> RunAsync(string? to, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (!ClearingPeriod.TryReadDay(to, out var end))
        {
            return new Refusal(ProblemCode.ClearingPeriodInvalid, "to is a day, yyyy-MM-dd (UTC), from 2000-01-01.");
        }

        var endStored = ClearingPeriod.Stored(end);
        if (string.CompareOrdinal(endStored, StoredTime.Format(now)) > 0)
        {
            return new Refusal(ProblemCode.ClearingPeriodInvalid, "A run clears what completed before its end: the end is today or earlier (00:00 UTC).");
        }

        string runId;
        bool completed;
        await using (var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false))
        {
            var (connection, transaction) = (write.Connection, write.Inner);
            await database.Dialect.LockAsync(connection, transaction, ClearingLockKey).ConfigureAwait(false);
            var endText = ClearingPeriod.Text(end);
            var run = (await connection.QueryAsync<(string RunId, string? CompletedAt)>(
                "SELECT run_id, completed_at FROM clearing_runs WHERE period_end = @endText", new { endText }, transaction).ConfigureAwait(false)).FirstOrDefault();
            if (run.RunId is not null)
            {
                (runId, completed) = (run.RunId, run.CompletedAt is not null);
            }
            else
            {
                var last = await connection.ExecuteScalarAsync<string?>("SELECT MAX(period_end) FROM clearing_runs", transaction: transaction).ConfigureAwait(false);
                if (last is not null && string.CompareOrdinal(last, endText) > 0)
                {
                    return new Refusal(ProblemCode.ClearingRunEarlier, $"The last run ended at {last}; a run ends then or later.");
                }

                runId = Guid.CreateVersion7(now).ToString();
                completed = false;
                await connection.ExecuteAsync(
                    "INSERT INTO clearing_runs (run_id, period_end, created_at) VALUES (@runId, @endText, @stamp)",
                    new { runId, endText, stamp = StoredTime.Format(now) }, transaction).ConfigureAwait(false);
            }

            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (!completed)
        {
            List<string> storeIds;
            await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
            {
                storeIds = [.. await connection.QueryAsync<string>("SELECT store_id FROM stores ORDER BY store_id").ConfigureAwait(false)];
            }

            foreach (var storeId in storeIds)
            {
                await ClearStoreAsync(runId, storeId, endStored, cancellationToken).ConfigureAwait(false);
            }

            await database.WriteAsync("UPDATE clearing_runs SET completed_at = @stamp WHERE run_id = @runId AND completed_at IS NULL",
                new { runId, stamp = StoredTime.Format(time.GetUtcNow()) }, cancellationToken).ConfigureAwait(false);
        }

        var view = await ReadRunAsync(runId, cancellationToken).ConfigureAwait(false);
        LogRun(view.RunId, view.To, view.Payouts.Count);
        return view;
    }

    /// <summary>The store payouts due, oldest first, IBANs masked.</summary>
    public async Task<IReadOnlyList<StorePayoutView>> ListDueAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return [.. (await DueAsync(connection).ConfigureAwait(false)).Select(row => row.View)];
    }

    /// <summary>
    /// The store payouts to make as CSV for the bank, with the full IBAN:
    /// <c>run_id,store_id,iban,account_holder,amount,currency,due_since</c>, oldest first. Only
    /// payouts to a store (net above zero) whose bank account is known; the list shows the others.
    /// </summary>
    public async Task<string> ExportDueAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder("run_id,store_id,iban,account_holder,amount,currency,due_since\n");
        foreach (var row in (await DueAsync(connection).ConfigureAwait(false)).Where(r => r.NetMinor > 0 && r.Iban is not null))
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{row.RunId},{Csv(row.StoreId)},{row.Iban},{Csv(row.AccountHolder!)},{Ledger.FormatUnits(row.NetMinor, row.Currency)},{row.Currency},{row.CreatedAt}\n");
        }

        return text.ToString();
    }

    /// <summary>
    /// The store's payouts of the run are paid (or, owed by the store, came in): due → paid, each
    /// once, storepayouts → issued (issued → storepayouts). A refusal when the run has no payout
    /// for the store, or none of them is due.
    /// </summary>
    public async Task<Result<IReadOnlyList<RunPayout>>> MarkPaidAsync(Guid runId, string? storeId, CancellationToken cancellationToken)
    {
        if (!IsStoreId(storeId))
        {
            return new Refusal(ProblemCode.ClearingPayoutNotFound, "No payout of that run for that store.");
        }

        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var rows = (await connection.QueryAsync<PayoutRow>(
            $"{PayoutSelect} WHERE p.run_id = @runId AND p.store_id = @storeId ORDER BY p.currency",
            new { runId = runId.ToString(), storeId }, transaction).ConfigureAwait(false)).ToList();
        if (rows.Count == 0)
        {
            return new Refusal(ProblemCode.ClearingPayoutNotFound, $"Run {runId} has no payout for store {storeId}.");
        }

        var paid = 0;
        foreach (var row in rows.Where(r => r.State == StorePayoutState.Due.ToText()))
        {
            var transition = row.NetMinor > 0 ? StorePayoutStates.Pay : StorePayoutStates.Collect;
            var amount = new Money(Math.Abs(row.NetMinor), Currency.FromCode(row.Currency));
            if (await StorePayoutStates.Machine.RunAsync(connection, transaction, transition, new Movement(row.PayoutId, "", row.StoreId, amount), now,
                    "paid_at = @stamp", parameters: new { stamp = StoredTime.Format(now) }).ConfigureAwait(false))
            {
                paid++;
            }
        }

        if (paid == 0)
        {
            return new Refusal(ProblemCode.ClearingPayoutNotDue, $"Run {runId} owes store {storeId} nothing now: its payout was paid before, or there was nothing to pay.");
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        LogPaid(runId, storeId!, paid);
        return rows.Select(r => r.State == StorePayoutState.Due.ToText() ? r with { State = StorePayoutState.Paid.ToText() } : r).Select(r => r.Payout).ToList();
    }

    /// <summary>A store id as the registry takes them; anything else names no store.</summary>
    public static bool IsStoreId(string? storeId) =>
        storeId is { Length: > 0 and <= 64 } && storeId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    private const string PayoutSelect =
        """
        SELECT p.payout_id AS PayoutId, p.run_id AS RunId, p.store_id AS StoreId, p.currency AS Currency, p.sales_minor AS SalesMinor,
               p.refunds_minor AS RefundsMinor, p.fee_minor AS FeeMinor, p.net_minor AS NetMinor, p.sales_count AS SalesCount,
               p.refunds_count AS RefundsCount, p.state AS State, p.created_at AS CreatedAt, c.iban AS Iban, c.account_holder AS AccountHolder
        FROM store_payouts p LEFT JOIN store_clearing c ON c.store_id = p.store_id
        """;

    // One store's clearing in a run, in one transaction under the clearing lock: what is not cleared
    // yet is read after the lock, so a run on another node that cleared it first leaves nothing.
    private async Task ClearStoreAsync(string runId, string storeId, string endStored, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var stamp = StoredTime.Format(now);
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        await database.Dialect.LockAsync(connection, transaction, ClearingLockKey).ConfigureAwait(false);
        var terms = await ReadTermsAsync(connection, transaction, storeId).ConfigureAwait(false);
        var items = (await connection.QueryAsync<(string Kind, string Id, long AmountMinor, string Currency)>(
            $"""
            SELECT '{Sale}' AS kind, s.settlement_id AS id, s.amount_minor, s.currency FROM settlements s
            WHERE s.store_id = @storeId AND s.state {SettlementStates.In(SettlementState.Completed)} AND s.completed_at < @endStored
              AND NOT EXISTS (SELECT 1 FROM cleared_items c WHERE c.item_id = s.settlement_id)
            UNION ALL
            SELECT '{Refund}', r.refund_id, r.amount_minor, r.currency FROM refunds r
            WHERE r.store_id = @storeId AND r.created_at < @endStored
              AND NOT EXISTS (SELECT 1 FROM cleared_items c WHERE c.item_id = r.refund_id)
            """,
            new { storeId, endStored }, transaction).ConfigureAwait(false)).ToList();
        if (items.Count == 0)
        {
            return;
        }

        var store = Account.Store(storeId);
        foreach (var currency in items.GroupBy(i => i.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var payoutId = Guid.CreateVersion7(now).ToString();
            var fees = currency.Select(i => (Item: i, Fee: i.Kind == Sale ? FeeOf(i.AmountMinor, terms.FeeBasisPoints, terms.FeeFixedMinor) : 0)).ToList();
            long sales = 0, refunds = 0, fee = 0;
            foreach (var (item, itemFee) in fees)
            {
                checked
                {
                    if (item.Kind == Sale)
                    {
                        sales += item.AmountMinor;
                        fee += itemFee;
                    }
                    else
                    {
                        refunds += item.AmountMinor;
                    }
                }
            }

            var net = checked(sales - refunds - fee);
            var state = net == 0 ? StorePayoutState.NothingDue : StorePayoutState.Due;
            await connection.ExecuteAsync(
                """
                INSERT INTO store_payouts (payout_id, run_id, store_id, currency, sales_minor, refunds_minor, fee_minor, net_minor, sales_count, refunds_count, state, created_at)
                VALUES (@payoutId, @runId, @storeId, @code, @sales, @refunds, @fee, @net, @salesCount, @refundsCount, @state, @stamp)
                """,
                new
                {
                    payoutId,
                    runId,
                    storeId,
                    code = currency.Key,
                    sales,
                    refunds,
                    fee,
                    net,
                    salesCount = (long)currency.Count(i => i.Kind == Sale),
                    refundsCount = (long)currency.Count(i => i.Kind == Refund),
                    state = state.ToText(),
                    stamp,
                },
                transaction).ConfigureAwait(false);
            // The primary key refuses an item cleared before: the whole store's transaction then rolls back.
            await connection.ExecuteAsync(
                "INSERT INTO cleared_items (item_id, kind, payout_id, amount_minor, fee_minor) VALUES (@Id, @Kind, @payoutId, @AmountMinor, @Fee)",
                fees.Select(f => new { f.Item.Id, f.Item.Kind, payoutId, f.Item.AmountMinor, f.Fee }), transaction).ConfigureAwait(false);
            var money = Currency.FromCode(currency.Key);
            if (fee > 0)
            {
                await Journal.PostAsync(connection, transaction, payoutId, now, new JournalEntry(store, Account.Fees, new Money(fee, money))).ConfigureAwait(false);
            }

            if (net != 0)
            {
                await Journal.PostAsync(connection, transaction, payoutId, now, net > 0
                    ? new JournalEntry(store, Account.StorePayouts, new Money(net, money))
                    : new JournalEntry(Account.StorePayouts, store, new Money(-net, money))).ConfigureAwait(false);
            }
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<ClearingRunView> ReadRunAsync(string runId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var run = await connection.QuerySingleAsync<(string RunId, string PeriodEnd, string CreatedAt, string? CompletedAt)>(
            "SELECT run_id, period_end, created_at, completed_at FROM clearing_runs WHERE run_id = @runId", new { runId }).ConfigureAwait(false);
        var payouts = (await connection.QueryAsync<PayoutRow>($"{PayoutSelect} WHERE p.run_id = @runId ORDER BY p.store_id, p.currency", new { runId }).ConfigureAwait(false))
            .Select(r => r.Payout).ToList();
        var totals = payouts.GroupBy(p => p.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new StatementTotals(g.Key, Sum(g, p => p.Sales), Sum(g, p => p.Refunds), Sum(g, p => p.Fee), Sum(g, p => p.Net), Sum(g, p => p.SalesCount), Sum(g, p => p.RefundsCount)))
            .ToList();
        return new ClearingRunView(run.RunId, run.PeriodEnd, run.CreatedAt, run.CompletedAt, payouts, totals);
    }

    private static long Sum<T>(IEnumerable<T> values, Func<T, long> of) => values.Aggregate(0L, (sum, value) => checked(sum + of(value)));

    private static async Task<IReadOnlyList<PayoutRow>> DueAsync(DbConnection connection) =>
        [.. await connection.QueryAsync<PayoutRow>($"{PayoutSelect} WHERE p.state {StorePayoutStates.Machine.In(StorePayoutState.Due)} ORDER BY p.created_at, p.store_id, p.currency LIMIT {ListMax}").ConfigureAwait(false)];

    private static async Task<IReadOnlyList<PayoutTotals>> PayoutTotalsAsync(DbConnection connection, DbTransaction transaction, string paidSql, string dueSql, object parameters)
    {
        var paid = (await connection.QueryAsync<(string Currency, long Count, long Minor)>(paidSql, parameters, transaction).ConfigureAwait(false)).ToList();
        var due = (await connection.QueryAsync<(string Currency, long Count, long Minor)>(dueSql, parameters, transaction).ConfigureAwait(false)).ToList();
        return [.. paid.Select(p => p.Currency).Union(due.Select(d => d.Currency)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(currency =>
        {
            var p = paid.FirstOrDefault(x => x.Currency == currency);
            var d = due.FirstOrDefault(x => x.Currency == currency);
            return new PayoutTotals(currency, p.Count, p.Minor, d.Count, d.Minor);
        })];
    }

    // A store's sales (completed settlements, by completion) and refunds (by when they were made) in the period.
    private static async Task<IReadOnlyList<StatementLine>> LinesAsync(DbConnection connection, DbTransaction transaction, string storeId, ClearingPeriod period)
    {
        var terms = await ReadTermsAsync(connection, transaction, storeId).ConfigureAwait(false);
        var rows = await connection.QueryAsync<LineRow>(
            $"""
            SELECT '{Sale}' AS Kind, s.settlement_id AS Id, s.order_no AS OrderNo, s.completed_at AS At, s.amount_minor AS AmountMinor, s.currency AS Currency,
                   c.fee_minor AS ClearedFee, p.run_id AS RunId
            FROM settlements s LEFT JOIN cleared_items c ON c.item_id = s.settlement_id LEFT JOIN store_payouts p ON p.payout_id = c.payout_id
            WHERE s.store_id = @storeId AND s.state {SettlementStates.In(SettlementState.Completed)} AND s.completed_at >= @from AND s.completed_at < @to
            UNION ALL
            SELECT '{Refund}', r.refund_id, s.order_no, r.created_at, r.amount_minor, r.currency, c.fee_minor, p.run_id
            FROM refunds r JOIN settlements s ON s.settlement_id = r.settlement_id
                 LEFT JOIN cleared_items c ON c.item_id = r.refund_id LEFT JOIN store_payouts p ON p.payout_id = c.payout_id
            WHERE r.store_id = @storeId AND r.created_at >= @from AND r.created_at < @to
            """,
            new { storeId, from = period.FromStored, to = period.ToStored }, transaction).ConfigureAwait(false);
        return [.. rows
            .OrderBy(r => r.At, StringComparer.Ordinal).ThenBy(r => r.Id, StringComparer.Ordinal)
            .Select(r => new StatementLine(r.Kind, r.Id, r.OrderNo, r.At, r.AmountMinor,
                r.ClearedFee ?? (r.Kind == Sale ? FeeOf(r.AmountMinor, terms.FeeBasisPoints, terms.FeeFixedMinor) : 0), r.Currency, r.RunId))];
    }

    private static List<StatementTotals> Totals(IEnumerable<StatementLine> lines) =>
        [.. lines.GroupBy(l => l.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            var sales = Sum(g.Where(l => l.Kind == Sale), l => l.AmountMinor);
            var refunds = Sum(g.Where(l => l.Kind == Refund), l => l.AmountMinor);
            var fees = Sum(g, l => l.FeeMinor);
            return new StatementTotals(g.Key, sales, refunds, fees, checked(sales - refunds - fees), g.Count(l => l.Kind == Sale), g.Count(l => l.Kind == Refund));
        })];

    private async Task<Result<StoreClearingTerms>> ChangeTermsAsync(string? storeId, string set, object parameters, CancellationToken cancellationToken)
    {
        if (!IsStoreId(storeId))
        {
            return UnknownStore();
        }

        var stamp = StoredTime.Format(time.GetUtcNow());
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        if (!await StoreExistsAsync(connection, transaction, storeId!).ConfigureAwait(false))
        {
            return UnknownStore();
        }

        var arguments = new DynamicParameters(parameters);
        arguments.Add("storeId", storeId);
        arguments.Add("stamp", stamp);
        await connection.ExecuteAsync(
            "INSERT INTO store_clearing (store_id, updated_at) VALUES (@storeId, @stamp) ON CONFLICT (store_id) DO NOTHING", new { storeId, stamp }, transaction).ConfigureAwait(false);
        await connection.ExecuteAsync($"UPDATE store_clearing SET {set}, updated_at = @stamp WHERE store_id = @storeId", arguments, transaction).ConfigureAwait(false);
        var terms = await ReadTermsAsync(connection, transaction, storeId!).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return terms;
    }

    private static async Task<bool> StoreExistsAsync(DbConnection connection, DbTransaction? transaction, string storeId) =>
        IsStoreId(storeId) && await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM stores WHERE store_id = @storeId", new { storeId }, transaction).ConfigureAwait(false) > 0;

    private static async Task<StoreClearingTerms> ReadTermsAsync(DbConnection connection, DbTransaction? transaction, string storeId)
    {
        var rows = (await connection.QueryAsync<(long BasisPoints, long FixedMinor, string? Iban, string? Holder)>(
            "SELECT fee_basis_points, fee_fixed_minor, iban, account_holder FROM store_clearing WHERE store_id = @storeId", new { storeId }, transaction).ConfigureAwait(false)).ToList();
        return rows is [var terms]
            ? new StoreClearingTerms(storeId, terms.BasisPoints, terms.FixedMinor, terms.Iban is null ? null : Iban.Mask(terms.Iban), terms.Holder)
            : new StoreClearingTerms(storeId, 0, 0, null, null);
    }

    private static Refusal UnknownStore() => new(ProblemCode.StoreNotFound, "No such store.");

    // A field as CSV (RFC 4180) and safe to open in a spreadsheet: quoted, quotes doubled, and a
    // leading formula character neutralised.
    private static string Csv(string value)
    {
        var safe = value.Length > 0 && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r' ? "'" + value : value;
        return "\"" + safe.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Clearing run {RunId} to {To}: {Payouts} store payout(s)")]
    private partial void LogRun(string runId, string to, int payouts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Clearing run {RunId}: {Count} payout(s) of store {StoreId} marked paid")]
    private partial void LogPaid(Guid runId, string storeId, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Store {StoreId}'s bank account set to {Iban}")]
    private partial void LogBankSet(string storeId, string? iban);

    private sealed record LineRow
    {
        public required string Kind { get; init; }

        public required string Id { get; init; }

        public required string OrderNo { get; init; }

        public required string At { get; init; }

        public required long AmountMinor { get; init; }

        public required string Currency { get; init; }

        public long? ClearedFee { get; init; }

        public string? RunId { get; init; }
    }

    private sealed record PayoutRow
    {
        public required string PayoutId { get; init; }

        public required string RunId { get; init; }

        public required string StoreId { get; init; }

        public required string Currency { get; init; }

        public required long SalesMinor { get; init; }

        public required long RefundsMinor { get; init; }

        public required long FeeMinor { get; init; }

        public required long NetMinor { get; init; }

        public required long SalesCount { get; init; }

        public required long RefundsCount { get; init; }

        public required string State { get; init; }

        public required string CreatedAt { get; init; }

        public string? Iban { get; init; }

        public string? AccountHolder { get; init; }

        public RunPayout Payout => new(StoreId, Currency, SalesMinor, RefundsMinor, FeeMinor, NetMinor, SalesCount, RefundsCount, State);

        public StorePayoutView View => new(RunId, StoreId, NetMinor, Currency, Iban is null ? null : Protocol.Messages.Iban.Mask(Iban), AccountHolder, CreatedAt);
    }
}
