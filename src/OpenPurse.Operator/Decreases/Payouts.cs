using System.Globalization;
using System.Text;
using Dapper;
using Microsoft.Extensions.Logging;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Credits;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Decreases;

/// <summary>A cash-out's payout as the admin API lists it: the IBAN masked.</summary>
/// <param name="CashOutId">The cash-out, and the reference the bank transfer should carry.</param>
/// <param name="State"><c>debited</c> (waiting for clearing), <c>paid</c> or <c>returned</c>.</param>
/// <param name="Amount">What the bank account is paid.</param>
/// <param name="Iban">The IBAN, masked: its country and last four characters.</param>
/// <param name="AccountHolder">The account holder's name.</param>
/// <param name="DebitedAt">When the card's DEBIT was proved, and the payout became due.</param>
internal sealed record PayoutView(Guid CashOutId, string State, Money Amount, string Iban, string AccountHolder, DateTimeOffset? DebitedAt);

/// <summary>
/// Clearing the cash-outs' payouts (the admin API's <c>/v1/admin/payouts</c>; docs/operations.md,
/// "Clearing payouts"): the list of payouts due, the export for the bank (the only place the full
/// IBAN leaves the registry), and the operator's word that the bank paid one (payouts → issued) or
/// sent it back (payouts → pending: the card takes it at its next sync).
/// </summary>
internal sealed partial class Payouts(Database database, TimeProvider time, ILogger<Payouts> logger)
{
    /// <summary>The most payouts one list or export holds.</summary>
    public const int ListMax = 1000;

    private const string Select =
        """
        SELECT cashout_id AS CashOutId, card_id AS CardId, amount_minor AS AmountMinor, currency AS Currency, iban AS Iban,
               account_holder AS AccountHolder, state AS State, debited_at AS DebitedAt
        FROM cashouts
        """;

    /// <summary>The payouts waiting for clearing, oldest first.</summary>
    public async Task<IReadOnlyList<PayoutView>> ListDueAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return [.. (await DueAsync(connection).ConfigureAwait(false)).Select(row => row.View)];
    }

    /// <summary>
    /// The payouts waiting for clearing as CSV for the bank, with the full IBAN:
    /// <c>cashout_id,iban,account_holder,amount,currency,debited_at</c>, one line each, oldest first.
    /// </summary>
    public async Task<string> ExportDueAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder("cashout_id,iban,account_holder,amount,currency,debited_at\n");
        foreach (var row in await DueAsync(connection).ConfigureAwait(false))
        {
            text.Append(CultureInfo.InvariantCulture, $"{row.CashOutId},{row.Iban},{Csv(row.AccountHolder)},{Ledger.FormatUnits(row.AmountMinor, row.Currency)},{row.Currency},{row.DebitedAt}\n");
        }

        return text.ToString();
    }

    /// <summary>debited → paid: the bank transfer was made; payouts → issued.</summary>
    public Task<Result<PayoutView>> MarkPaidAsync(Guid cashOutId, CancellationToken cancellationToken) =>
        ClearAsync(cashOutId, CashOutStates.Pay, cancellationToken);

    /// <summary>debited → returned: the bank sent the payout back; payouts → pending, and the card takes it at its next sync (a card credit, purpose <c>refund</c>, source the cash-out: the bank's refund of the payout).</summary>
    public Task<Result<PayoutView>> MarkReturnedAsync(Guid cashOutId, CancellationToken cancellationToken) =>
        ClearAsync(cashOutId, CashOutStates.Return, cancellationToken);

    private async Task<Result<PayoutView>> ClearAsync(Guid cashOutId, Transition<CashOutState> transition, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var write = await database.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        var (connection, transaction) = (write.Connection, write.Inner);
        var row = await connection.QuerySingleOrDefaultAsync<PayoutRow>(Select + " WHERE cashout_id = @id", new { id = cashOutId.ToString() }, transaction).ConfigureAwait(false);
        if (row is null)
        {
            return new Refusal(ProblemCode.CashOutNotFound, $"No cash-out {cashOutId}.");
        }

        var moved = await CashOutStates.Machine.RunAsync(connection, transaction, transition, new Movement(row.CashOutId, row.CardId, null, row.Amount), now,
                "cleared_at = @now, updated_at = @now", parameters: new { now = StoredTime.Format(now) }).ConfigureAwait(false)
            && (transition != CashOutStates.Return
                || await CardCredits.OweAsync(connection, transaction, row.CardId, row.Amount, ValueUpdatePurposes.Refund, Guid.Parse(row.CashOutId), Account.Payouts, now).ConfigureAwait(false));
        if (!moved)
        {
            return new Refusal(ProblemCode.PayoutNotPending, $"Cash-out {cashOutId} is {row.State}: its payout is not waiting for clearing.");
        }

        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        var cleared = row with { State = transition.To.ToText() };
        var view = cleared.View;
        LogCleared(cashOutId, view.Amount, view.Iban, view.State);
        return view;
    }

    private static async Task<IReadOnlyList<PayoutRow>> DueAsync(System.Data.Common.DbConnection connection) =>
        [.. await connection.QueryAsync<PayoutRow>($"{Select} WHERE state {CashOutStates.Machine.In(CashOutState.Debited)} ORDER BY debited_at, cashout_id LIMIT {ListMax}").ConfigureAwait(false)];

    // A field as CSV (RFC 4180) and safe to open in a spreadsheet: quoted, quotes doubled, and a
    // leading formula character neutralised.
    private static string Csv(string value)
    {
        var safe = value.Length > 0 && value[0] is '=' or '+' or '-' or '@' ? "'" + value : value;
        return "\"" + safe.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Payout of cash-out {CashOutId}, {Amount} to {Iban}: {State}")]
    private partial void LogCleared(Guid cashOutId, Money amount, string iban, string state);

    private sealed record PayoutRow
    {
        public required string CashOutId { get; init; }

        public required string CardId { get; init; }

        public required long AmountMinor { get; init; }

        public required string Currency { get; init; }

        public required string Iban { get; init; }

        public required string AccountHolder { get; init; }

        public required string State { get; init; }

        public string? DebitedAt { get; init; }

        public Money Amount => new(AmountMinor, Protocol.Currency.FromCode(Currency));

        public PayoutView View => new(Guid.Parse(CashOutId), State, Amount, Protocol.Messages.Iban.Mask(Iban), AccountHolder, DebitedAt is null ? null : StoredTime.Parse(DebitedAt));
    }
}
