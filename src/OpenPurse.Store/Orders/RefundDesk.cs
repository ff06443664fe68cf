using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;

namespace OpenPurse.Store.Orders;

/// <summary>What a store owner asks: a refund of a paid order, of an amount (all that is left when none) and a reason.</summary>
/// <param name="OrderNo">The paid order.</param>
/// <param name="Amount">What to give back, <c>5.00</c> or <c>5.00 EUR</c>, in the order's currency; null for all that is left.</param>
/// <param name="Reason">Why, for people (at most 200 characters), or null.</param>
internal sealed record RefundOrder(string OrderNo, string? Amount = null, string? Reason = null);

/// <summary>A refund as the store recorded it, with the operator's signed notice.</summary>
/// <param name="RefundId">The refund.</param>
/// <param name="OrderNo">The order it refunds.</param>
/// <param name="SettlementId">The operator's settlement that paid the order.</param>
/// <param name="Amount">This refund.</param>
/// <param name="RefundedTotal">Everything refunded of the order, this refund included.</param>
/// <param name="State"><c>owed</c> (the card takes it at its next sync) or <c>credited</c>.</param>
/// <param name="CardMasked">The card the value goes back to, masked.</param>
/// <param name="Notice">The operator's refund notice, a compact JWS.</param>
internal sealed record RefundView(Guid RefundId, string OrderNo, Guid SettlementId, Money Amount, Money RefundedTotal, string State, string CardMasked, string Notice);

/// <summary>A refund in the list of an order's refunds.</summary>
/// <param name="RefundId">The refund.</param>
/// <param name="Amount">What goes back to the card.</param>
/// <param name="Reason">Why, as the store owner said, or null.</param>
/// <param name="State"><c>requested</c> (the operator has not answered), <c>owed</c> (the card takes it at its next sync), <c>credited</c> (the card took it) or <c>refused</c>.</param>
/// <param name="RequestedAt">When the store owner asked.</param>
/// <param name="RefusedCode">The operator's problem code, for a refused refund.</param>
/// <param name="Notice">The operator's latest signed refund notice, a compact JWS, once answered.</param>
/// <param name="NotRefreshed">Why an open refund could not be asked about now (its state is the one last recorded), or null.</param>
internal sealed record RefundStatus(Guid RefundId, Money Amount, string? Reason, string State, DateTimeOffset RequestedAt, string? RefusedCode, string? Notice, RefundNotRefreshed? NotRefreshed);

/// <summary>Why an open refund shows as last recorded: a problem code (<c>refund.operator_unreachable</c>, <c>refund.refused</c>) and what happened.</summary>
internal sealed record RefundNotRefreshed(string Code, string Detail);

/// <summary>An order's refunds, oldest first (<c>GET /v1/admin/orders/{orderNo}/refunds</c>, <c>openpurse-store refunds</c>).</summary>
/// <param name="OrderNo">The order.</param>
/// <param name="Paid">What the order cost.</param>
/// <param name="Refunded">What the operator recorded as refunded: the owed and credited refunds.</param>
/// <param name="Credited">What of it the card took.</param>
/// <param name="Refunds">Each refund.</param>
internal sealed record OrderRefunds(string OrderNo, Money Paid, Money Refunded, Money Credited, IReadOnlyList<RefundStatus> Refunds);

/// <summary>
/// A refund by the store owner (the admin API's <c>POST /v1/admin/refunds</c> and
/// <c>openpurse-store refund</c>): checked against the order first (paid, and not refunded past
/// what was paid), recorded as requested, signed by the member store that was paid, sent to the
/// operator, and recorded with the operator's signed notice. A refund the operator did not answer
/// stays requested; asked again with the same amount and reason, or when the order's refunds are
/// listed, it is sent again under its id. Listing them also asks the operator whether the card
/// took each owed one.
/// </summary>
internal sealed class RefundDesk(OrderDatabase database, MemberKeys keys, OperatorClient client, OperatorKeys operatorKeys, TimeProvider time)
{
    public async Task<Result<RefundView>> RefundAsync(RefundOrder order, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(order);
        if (string.IsNullOrEmpty(order.OrderNo))
        {
            return StoreRefusals.Malformed("Name the order to refund.");
        }

        if (order.Reason is { } reason && (reason.Length > RefundRequest.ReasonLengthMax || reason.Any(char.IsControl)))
        {
            return StoreRefusals.Malformed($"A reason is at most {RefundRequest.ReasonLengthMax} characters, without control characters.");
        }

        var known = await database.FindAsync(order.OrderNo, cancellationToken).ConfigureAwait(false);
        if (known is null)
        {
            return StoreRefusals.OrderNotFound(order.OrderNo);
        }

        Money? amount = null;
        if (order.Amount is { } text)
        {
            var written = text.Contains(' ', StringComparison.Ordinal) ? text : $"{text} {known.Amount.Currency.Code}";
            if (!Money.TryParse(written, out var parsed))
            {
                return new Refusal(ProblemCode.RefundAmountInvalid, $"'{text}' is not an amount such as 5.00 or 5.00 {known.Amount.Currency.Code}.");
            }

            amount = parsed;
        }

        var now = time.GetUtcNow();
        var requested = await database.RequestRefundAsync(order.OrderNo, amount, order.Reason, now, cancellationToken).ConfigureAwait(false);
        if (requested.Value is not var (paid, refund))
        {
            return requested.Refusal!;
        }

        var sent = await SendAsync(paid, refund, cancellationToken).ConfigureAwait(false);
        if (sent.Refusal is { } refused)
        {
            return refused;
        }

        var (notice, signedNotice) = sent.Value;
        return new RefundView(refund.RefundId, paid.OrderNo, notice.SettlementId, notice.Amount, notice.RefundedTotal, notice.State, notice.CardMasked, signedNotice);
    }

    /// <summary>
    /// An order's refunds, each still open asked about first: one the operator has not answered is
    /// sent again under its id (as asking for it again would), and an owed one is read from the
    /// operator (<c>GET /v1/refunds/{id}</c> with the paid member store's signed query) and recorded
    /// <c>credited</c> once the card took it. What cannot be asked, or is not the operator's signed
    /// notice of that refund, changes nothing: the refund shows as last recorded, and says why.
    /// </summary>
    public async Task<Result<OrderRefunds>> RefundsOfAsync(string orderNo, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(orderNo);
        var order = orderNo.Length == 0 ? null : await database.FindAsync(orderNo, cancellationToken).ConfigureAwait(false);
        if (order is null)
        {
            return StoreRefusals.OrderNotFound(orderNo);
        }

        var notRefreshed = new Dictionary<Guid, Refusal>();
        foreach (var open in (await database.RefundsOfAsync(orderNo, cancellationToken).ConfigureAwait(false)).Where(r => r.State is StoredRefund.Requested or RefundNoticeStates.Owed))
        {
            Refusal? why;
            if (open.State == StoredRefund.Requested)
            {
                // Refused when sent again, the refund is recorded refused: that is its answer, not a failure to ask.
                why = (await SendAsync(order, open, cancellationToken).ConfigureAwait(false)).Refusal is { } refusal && refusal.Problem != ProblemCode.RefundRefused ? refusal : null;
            }
            else
            {
                why = await AskAsync(order, open, cancellationToken).ConfigureAwait(false);
            }

            if (why is not null)
            {
                notRefreshed[open.RefundId] = why;
            }
        }

        // Read again: what the operator answered is what was recorded.
        var refunds = await database.RefundsOfAsync(orderNo, cancellationToken).ConfigureAwait(false);
        var currency = order.Amount.Currency;
        long Sum(Func<StoredRefund, bool> which) => refunds.Where(which).Sum(r => r.Amount.MinorUnits);
        return new OrderRefunds(
            order.OrderNo,
            order.Amount,
            new Money(Sum(r => r.State is RefundNoticeStates.Owed or RefundNoticeStates.Credited), currency),
            new Money(Sum(r => r.State == RefundNoticeStates.Credited), currency),
            [.. refunds.Select(r => new RefundStatus(r.RefundId, r.Amount, r.Reason, r.State, r.RequestedAt, r.RefusedCode, r.Notice,
                notRefreshed.TryGetValue(r.RefundId, out var why) ? new RefundNotRefreshed(why.Code, why.Detail) : null))]);
    }

    // Signs the refund request with the paid member store's key and sends it: the operator's notice
    // (not recorded yet), or its refusal (recorded), or no answer (nothing recorded, sent again later).
    private async Task<Result<(RefundNotice Notice, string Signed)>> SendAsync(OrderRecord paid, StoredRefund refund, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var request = new RefundRequest(refund.RefundId, paid.SettlementId!.Value, paid.StoreId, refund.Amount, refund.Reason, now);
        var signed = SignedMessage.Sign(keys.For(paid.StoreId), request, MessageTypes.RefundRequest);
        (RefundAnswer? Answer, string? Code, string? Detail) answered;
        try
        {
            answered = await client.RefundAsync(signed, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return new Refusal(ProblemCode.RefundOperatorUnreachable, $"The operator did not answer refund {refund.RefundId}; ask again for the same amount to send it again.");
        }

        if (answered.Answer is not { } answer)
        {
            await database.RecordRefundAnswerAsync(refund.RefundId, StoredRefund.Refused, null, answered.Code, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
            return new Refusal(ProblemCode.RefundRefused, $"The operator refused refund {refund.RefundId}: {answered.Code} ({answered.Detail}).");
        }

        var notice = await OpenAsync(answer.Notice, paid, refund, cancellationToken).ConfigureAwait(false);
        if (notice is null)
        {
            return new Refusal(ProblemCode.RefundOperatorUnreachable, $"The operator's answer to refund {refund.RefundId} is not its signed notice; ask again to send it again.");
        }

        await database.RecordRefundAnswerAsync(refund.RefundId, notice.State, answer.Notice, null, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
        return (notice, answer.Notice);
    }

    // Reads an owed refund's notice now from the operator and records it when its state moved on;
    // null once asked, or why it could not be (nothing recorded).
    private async Task<Refusal?> AskAsync(OrderRecord paid, StoredRefund refund, CancellationToken cancellationToken)
    {
        var query = SettlementReadProof.ForStore(keys.For(paid.StoreId), paid.SettlementId!.Value, paid.StoreId, time.GetUtcNow());
        (RefundAnswer? Answer, string? Code, string? Detail) answered;
        try
        {
            answered = await client.GetRefundAsync(refund.RefundId, query, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return new Refusal(ProblemCode.RefundOperatorUnreachable, $"The operator did not answer about refund {refund.RefundId}: it is shown as last recorded.");
        }

        if (answered.Answer is not { } answer)
        {
            // A refusal to show a refund (refund.not_found, …) decides nothing about it.
            return new Refusal(ProblemCode.RefundRefused, $"The operator did not show refund {refund.RefundId}: {answered.Code} ({answered.Detail}); it is shown as last recorded.");
        }

        var notice = await OpenAsync(answer.Notice, paid, refund, cancellationToken).ConfigureAwait(false);
        if (notice is null)
        {
            return new Refusal(ProblemCode.RefundOperatorUnreachable, $"The operator's answer about refund {refund.RefundId} is not its signed notice of it: nothing was recorded.");
        }

        if (notice.State != refund.State)
        {
            await database.RecordRefundAnswerAsync(refund.RefundId, notice.State, answer.Notice, null, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
        }

        return null;
    }

    // The operator's notice of this refund, checked with its published keys: the same refund,
    // settlement, amount and store, in a state the store records; null for anything else.
    private async Task<RefundNotice?> OpenAsync(string? signed, OrderRecord paid, StoredRefund refund, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(signed))
        {
            return null;
        }

        var keySet = await operatorKeys.GetForAsync(Jws.PeekKeyId(signed), cancellationToken).ConfigureAwait(false);
        var notice = keySet is null ? null : SignedMessage.Verify<RefundNotice>(signed, keySet, MessageTypes.RefundNotice, out _);
        return notice is not null && notice.RefundId == refund.RefundId && notice.SettlementId == paid.SettlementId && notice.Amount == refund.Amount
            && notice.StoreId == paid.StoreId && notice.State is RefundNoticeStates.Owed or RefundNoticeStates.Credited
            ? notice
            : null;
    }
}
