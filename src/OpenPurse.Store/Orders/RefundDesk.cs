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

/// <summary>
/// A refund by the store owner (the admin API's <c>POST /v1/admin/refunds</c> and
/// <c>openpurse-store refund</c>): checked against the order first (paid, and not refunded past
/// what was paid), recorded as requested, signed by the member store that was paid, sent to the
/// operator, and recorded with the operator's signed notice. A refund the operator did not answer
/// stays requested; asked again with the same amount and reason, it is sent again under its id.
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

        var notice = await OpenAsync(answer.Notice, cancellationToken).ConfigureAwait(false);
        if (notice is null || notice.RefundId != refund.RefundId || notice.SettlementId != paid.SettlementId || notice.Amount != refund.Amount || notice.StoreId != paid.StoreId)
        {
            return new Refusal(ProblemCode.RefundOperatorUnreachable, $"The operator's answer to refund {refund.RefundId} is not its signed notice; ask again to send it again.");
        }

        await database.RecordRefundAnswerAsync(refund.RefundId, notice.State, answer.Notice, null, time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
        return new RefundView(refund.RefundId, paid.OrderNo, notice.SettlementId, notice.Amount, notice.RefundedTotal, notice.State, notice.CardMasked, answer.Notice);
    }

    // The operator's notice, checked with its published keys.
    private async Task<RefundNotice?> OpenAsync(string notice, CancellationToken cancellationToken)
    {
        var keySet = await operatorKeys.GetForAsync(Jws.PeekKeyId(notice), cancellationToken).ConfigureAwait(false);
        return keySet is null ? null : SignedMessage.Verify<RefundNotice>(notice, keySet, MessageTypes.RefundNotice, out _);
    }
}
