using System.Globalization;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Clearing;

/// <summary>
/// A period of clearing: UTC days, half-open — from 00:00 UTC of <see cref="From"/> up to, not
/// including, 00:00 UTC of <see cref="To"/>. Read from hostile text by <see cref="TryRead"/> alone.
/// </summary>
internal readonly record struct ClearingPeriod(DateOnly From, DateOnly To)
{
    /// <summary>The longest period a statement or summary covers: a leap year.</summary>
    public const int DaysMax = 366;

    /// <summary>The start as stored times compare: <c>yyyy-MM-ddT00:00:00.000Z</c>.</summary>
    public string FromStored => Stored(From);

    /// <summary>The end (exclusive) as stored times compare.</summary>
    public string ToStored => Stored(To);

    /// <summary>A day as the command line and the API take it: exactly <c>yyyy-MM-dd</c>, ASCII digits, a real date.</summary>
    public static bool TryReadDay(string? text, out DateOnly day)
    {
        day = default;
        return text is { Length: 10 } && text[4] == '-' && text[7] == '-'
            && text.Where((c, i) => i is not (4 or 7)).All(char.IsAsciiDigit)
            && DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day)
            && day.Year is >= 2000 and <= 9998;
    }

    /// <summary>A period from two days as given; a refusal (<c>clearing.period_invalid</c>) says what is wrong, never repeating the text.</summary>
    public static Result<ClearingPeriod> TryRead(string? from, string? to)
    {
        if (!TryReadDay(from, out var start) || !TryReadDay(to, out var end))
        {
            return new Refusal(ProblemCode.ClearingPeriodInvalid, "from and to are days, yyyy-MM-dd (UTC), from 2000-01-01.");
        }

        if (end <= start || end.DayNumber - start.DayNumber > DaysMax)
        {
            return new Refusal(ProblemCode.ClearingPeriodInvalid, $"to is after from, by at most {DaysMax} days (the period is half-open: to is not in it).");
        }

        return new ClearingPeriod(start, end);
    }

    /// <summary>The day's 00:00 UTC as the registry stores times.</summary>
    public static string Stored(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + "T00:00:00.000Z";

    /// <summary>The day as the command line and the API write it.</summary>
    public static string Text(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}

/// <summary>A store's clearing terms: its fee and, masked, the bank account its payouts go to.</summary>
/// <param name="StoreId">The store.</param>
/// <param name="FeeBasisPoints">Basis points of each sale (0 to 10000).</param>
/// <param name="FeeFixedMinor">Minor units per sale, of the sale's currency.</param>
/// <param name="Iban">The IBAN, masked; null before one is set.</param>
/// <param name="AccountHolder">The account holder's name; null before one is set.</param>
internal sealed record StoreClearingTerms(string StoreId, long FeeBasisPoints, long FeeFixedMinor, string? Iban, string? AccountHolder);

/// <summary>A store's fee, as <c>POST /v1/admin/clearing/stores/{storeId}/fee</c> takes it.</summary>
/// <param name="BasisPoints">0 to 10000 of each sale (250 = 2.5 %).</param>
/// <param name="FixedMinor">0 to <see cref="ClearingService.FixedFeeMax"/> minor units per sale.</param>
internal sealed record StoreFeeRequest(long BasisPoints, long FixedMinor = 0);

/// <summary>A store's bank account, as <c>POST /v1/admin/clearing/stores/{storeId}/bank</c> takes it.</summary>
/// <param name="Iban">The IBAN, spaces allowed.</param>
/// <param name="Holder">The account holder's name.</param>
internal sealed record StoreBankRequest(string? Iban, string? Holder);

/// <summary>A clearing run's end, as <c>POST /v1/admin/clearing/runs</c> takes it.</summary>
/// <param name="To">The end, yyyy-MM-dd (UTC, exclusive).</param>
internal sealed record ClearingRunRequest(string? To);

/// <summary>One line of a store's statement: a sale (a completed settlement) or a refund.</summary>
/// <param name="Kind"><c>sale</c> or <c>refund</c>.</param>
/// <param name="Id">The settlement's or the refund's id.</param>
/// <param name="OrderNo">The order's number at the store.</param>
/// <param name="At">When it completed (UTC), as stored.</param>
/// <param name="AmountMinor">Its amount, positive for both kinds.</param>
/// <param name="FeeMinor">The operator's fee on a sale (as cleared, or as the store's terms make it now); 0 for a refund.</param>
/// <param name="Currency">The currency's code.</param>
/// <param name="RunId">The clearing run that cleared it; null while not cleared.</param>
internal sealed record StatementLine(string Kind, string Id, string OrderNo, string At, long AmountMinor, long FeeMinor, string Currency, string? RunId);

/// <summary>A store's totals in one currency: what the operator owes it for the lines.</summary>
/// <param name="Currency">The currency's code.</param>
/// <param name="Sales">The sum of the sales.</param>
/// <param name="Refunds">The sum of the refunds.</param>
/// <param name="Fees">The sum of the fees.</param>
/// <param name="Owed">Sales − refunds − fees: what the operator owes the store (below zero: what the store owes).</param>
/// <param name="SalesCount">How many sales.</param>
/// <param name="RefundsCount">How many refunds.</param>
internal sealed record StatementTotals(string Currency, long Sales, long Refunds, long Fees, long Owed, long SalesCount, long RefundsCount);

/// <summary>A store's statement for a period.</summary>
/// <param name="StoreId">The store, which is the one paid.</param>
/// <param name="Name">Its registered name.</param>
/// <param name="MallId">Its mall, if any.</param>
/// <param name="From">The first day (UTC).</param>
/// <param name="To">The day after the last (UTC, exclusive).</param>
/// <param name="Lines">Its sales and refunds, by time.</param>
/// <param name="Totals">Per currency.</param>
/// <param name="Members">For a mall: its member stores, each with a statement of its own.</param>
internal sealed record StoreStatementView(string StoreId, string Name, string? MallId, string From, string To, IReadOnlyList<StatementLine> Lines, IReadOnlyList<StatementTotals> Totals, IReadOnlyList<string> Members);

/// <summary>One store's line of the summary: its totals per currency.</summary>
internal sealed record SummaryStore(string StoreId, string? MallId, IReadOnlyList<StatementTotals> Totals);

/// <summary>Value decreases' cash-outs, or stores' payouts, in one currency: paid in the period and still due at its end.</summary>
/// <param name="Currency">The currency's code.</param>
/// <param name="PaidCount">Paid (marked paid) in the period.</param>
/// <param name="PaidMinor">Their sum.</param>
/// <param name="DueCount">Waiting to be paid, due since before the period's end.</param>
/// <param name="DueMinor">Their sum.</param>
internal sealed record PayoutTotals(string Currency, long PaidCount, long PaidMinor, long DueCount, long DueMinor);

/// <summary>The summary over all stores for a period.</summary>
/// <param name="From">The first day (UTC).</param>
/// <param name="To">The day after the last (UTC, exclusive).</param>
/// <param name="Stores">Each store with sales or refunds in the period, a mall's members each on a line of their own.</param>
/// <param name="Totals">Over all stores, per currency.</param>
/// <param name="CashOuts">The cash-outs of value decreases, per currency.</param>
/// <param name="StorePayouts">The clearing runs' payouts to stores, per currency.</param>
internal sealed record ClearingSummary(string From, string To, IReadOnlyList<SummaryStore> Stores, IReadOnlyList<StatementTotals> Totals, IReadOnlyList<PayoutTotals> CashOuts, IReadOnlyList<PayoutTotals> StorePayouts);

/// <summary>What one run cleared for one store in one currency.</summary>
/// <param name="StoreId">The store.</param>
/// <param name="Currency">The currency's code.</param>
/// <param name="Sales">The sum of the sales cleared.</param>
/// <param name="Refunds">The sum of the refunds cleared.</param>
/// <param name="Fee">The operator's fee.</param>
/// <param name="Net">Sales − refunds − fee: the payout (below zero: owed by the store).</param>
/// <param name="SalesCount">How many sales.</param>
/// <param name="RefundsCount">How many refunds.</param>
/// <param name="State"><c>due</c>, <c>paid</c> or <c>nothing_due</c>.</param>
internal sealed record RunPayout(string StoreId, string Currency, long Sales, long Refunds, long Fee, long Net, long SalesCount, long RefundsCount, string State);

/// <summary>A clearing run.</summary>
/// <param name="RunId">Its id: <c>clearing paid</c> takes it.</param>
/// <param name="To">Its end, yyyy-MM-dd (UTC, exclusive).</param>
/// <param name="CreatedAt">When it started.</param>
/// <param name="CompletedAt">When every store was cleared.</param>
/// <param name="Payouts">Per store and currency.</param>
/// <param name="Totals">Over all stores, per currency: sales, refunds, fees and nets.</param>
internal sealed record ClearingRunView(string RunId, string To, string CreatedAt, string? CompletedAt, IReadOnlyList<RunPayout> Payouts, IReadOnlyList<StatementTotals> Totals);

/// <summary>A store's payout waiting to be paid, as listed: the IBAN masked.</summary>
/// <param name="RunId">The run that cleared it.</param>
/// <param name="StoreId">The store.</param>
/// <param name="AmountMinor">The net: above zero paid to the store, below zero owed by it.</param>
/// <param name="Currency">The currency's code.</param>
/// <param name="Iban">The store's IBAN, masked; null when it has none yet.</param>
/// <param name="AccountHolder">The account holder's name; null when none yet.</param>
/// <param name="DueSince">When the run cleared it.</param>
internal sealed record StorePayoutView(string RunId, string StoreId, long AmountMinor, string Currency, string? Iban, string? AccountHolder, string DueSince);
