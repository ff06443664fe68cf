using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;

namespace OpenPurse.Store.Orders;

/// <summary>Who delivered a completion notice.</summary>
internal enum CompletionSource
{
    /// <summary>The wallet, after the card paid (the store then sends its receipt to the operator itself).</summary>
    Wallet,

    /// <summary>The operator (ST19: the ACN goes to the store, or the mall); the answer is the receipt.</summary>
    Operator,
}

/// <summary>
/// Checks settlement completion information ACN (SIG3) against the stored order, records the
/// payment and issues the receipt (SIG4); records the operator's void notices, which cancel an
/// unpaid order for good; hands out the goods for a paid order's receipt.
/// </summary>
internal sealed partial class CompletionDesk(
    StoreDirectory directory, MemberKeys keys, OrderDatabase database, OperatorKeys operatorKeys, OperatorClient operatorClient, TimeProvider time, StoreMetrics metrics, ILogger<CompletionDesk> log)
{
    /// <summary>
    /// Accepts an ACN: SIG3 by the operator, for an order of ours, with its store, mall, amount and bill
    /// digest. The same settlement delivered again gets the same receipt.
    /// </summary>
    /// <param name="source">Who delivered it; from the wallet the receipt is also sent to the operator.</param>
    /// <param name="orderNo">The order the wallet names in the path; null from the operator.</param>
    /// <param name="delivery">The notice.</param>
    /// <param name="cancellationToken">The request's.</param>
    public async Task<Outcome<ReceiptDelivery>> CompleteAsync(CompletionSource source, string? orderNo, CompletionDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var compact = delivery.CompletionNotice;
        var operatorSet = await operatorKeys.GetForAsync(Jws.PeekKeyId(compact), cancellationToken).ConfigureAwait(false);
        if (operatorSet is null)
        {
            return StoreError.OperatorUnavailable();
        }

        var notice = SignedMessage.Verify<CompletionNotice>(compact, operatorSet, MessageTypes.CompletionNotice, out var error);
        if (notice is null)
        {
            LogNoticeRefused(log, source, orderNo, error);
            return StoreError.CompletionSignatureInvalid(error);
        }

        if (orderNo is not null && !string.Equals(orderNo, notice.OrderNo, StringComparison.Ordinal))
        {
            return Mismatch(notice, $"The notice is for order '{notice.OrderNo}', not '{orderNo}'.");
        }

        var order = await database.FindAsync(notice.OrderNo, cancellationToken).ConfigureAwait(false);
        if (order is null)
        {
            return StoreError.OrderNotFound(notice.OrderNo);
        }

        // Everything the operator states about the order must be what this store billed: the bill
        // digest binds the notice to the very BILL+SIG1 issued, the rest catches a notice made for
        // another store, mall or amount.
        var mismatch = Differs(order, notice.StoreId, notice.MallId, notice.Amount, notice.BillDigest);
        if (mismatch is not null)
        {
            return Mismatch(notice, $"The notice's {mismatch} differs from order '{order.OrderNo}'.");
        }

        var now = time.GetUtcNow();
        var key = keys.For(order.StoreId);
        var points = directory.Find(order.StoreId)?.PointsFor(order.Amount);
        var (result, paid) = await database.RecordPaymentAsync(
            order.OrderNo,
            notice.SettlementId,
            compact,
            now,
            () => SignedMessage.Sign(key, new Receipt(notice.SettlementId, order.OrderNo, order.StoreId, order.Amount, SignedMessage.Digest(compact), now, points), MessageTypes.Receipt),
            cancellationToken).ConfigureAwait(false);

        if (result == PaymentResult.PaidByAnotherSettlement)
        {
            // Two settlements for one order mean the buyer paid twice: the operator must reverse one.
            LogPaidTwice(log, order.OrderNo, paid.SettlementId, notice.SettlementId);
            return StoreError.CompletionConflict($"Order '{order.OrderNo}' is already paid; this notice names a different settlement.");
        }

        if (result == PaymentResult.OrderVoided)
        {
            // The operator said this settlement (or the order's only one) will never be paid: a store
            // never delivers goods for it, whatever a later notice claims.
            Debug.Assert(paid.Void is not null, "A voided order has its void.");
            LogCompletedAfterVoid(log, order.OrderNo, paid.Void.SettlementId, notice.SettlementId, source);
            return StoreError.CompletionConflict(
                $"Order '{order.OrderNo}' is cancelled: the operator voided settlement {paid.Void.SettlementId} ({paid.Void.Reason}); it is never paid.");
        }

        if (result == PaymentResult.SettlementPaidAnotherOrder)
        {
            LogSettlementReused(log, notice.SettlementId, order.OrderNo);
            return StoreError.CompletionConflict($"Settlement {notice.SettlementId} already paid another order; it cannot pay '{order.OrderNo}' too.");
        }

        Debug.Assert(paid.Receipt is not null && paid.SettlementId == notice.SettlementId, "A recorded payment has this settlement's receipt.");
        Debug.Assert(SignedMessage.Verify<Receipt>(paid.Receipt, keys.SetFor(order.StoreId), MessageTypes.Receipt, out _)?.OrderNo == order.OrderNo, "The receipt verifies with the member store's key.");
        LogPaid(log, order.OrderNo, order.StoreId, notice.SettlementId, source, result == PaymentResult.AlreadyRecorded);
        if (result != PaymentResult.AlreadyRecorded)
        {
            metrics.Paid(order.StoreId);
        }

        if (source == CompletionSource.Wallet)
        {
            // Sent again on every wallet delivery, so a wallet that retries also retries this. Not tied to
            // the wallet's request: a wallet that hangs up does not stop the operator getting the receipt.
            await ForwardReceiptAsync(notice.SettlementId, paid.Receipt).ConfigureAwait(false);
        }

        return new ReceiptDelivery(paid.Receipt);
    }

    /// <summary>
    /// Accepts the operator's void notice (signed with the ACN's key): the order's settlement will never
    /// be paid, so the order is cancelled. The notice must be for an order of ours, with its store,
    /// mall, amount and bill digest. Idempotent: a void recorded before is accepted again (the first
    /// stands). A paid order is refused: its payment stands.
    /// </summary>
    /// <returns>Null when the void is recorded (now or before); else the refusal.</returns>
    public async Task<StoreError?> VoidAsync(VoidDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var compact = delivery.VoidNotice;
        var operatorSet = await operatorKeys.GetForAsync(Jws.PeekKeyId(compact), cancellationToken).ConfigureAwait(false);
        if (operatorSet is null)
        {
            return StoreError.OperatorUnavailable("void notice");
        }

        var notice = SignedMessage.Verify<VoidNotice>(compact, operatorSet, MessageTypes.VoidNotice, out var error);
        if (notice is null)
        {
            LogVoidRefused(log, error);
            return StoreError.VoidSignatureInvalid(error);
        }

        var order = await database.FindAsync(notice.OrderNo, cancellationToken).ConfigureAwait(false);
        if (order is null)
        {
            return StoreError.OrderNotFound(notice.OrderNo);
        }

        // As for an ACN: the notice must be about the very bill this store issued.
        var mismatch = Differs(order, notice.StoreId, notice.MallId, notice.Amount, notice.BillDigest);
        if (mismatch is not null)
        {
            var detail = $"The void notice's {mismatch} differs from order '{order.OrderNo}'.";
            LogVoidMismatch(log, notice.SettlementId, notice.OrderNo, detail);
            return StoreError.VoidMismatch(detail);
        }

        var (result, recorded) = await database.RecordVoidAsync(
            order.OrderNo, notice.SettlementId, compact, notice.Reason, notice.VoidedAt, cancellationToken).ConfigureAwait(false);
        switch (result)
        {
            case VoidResult.OrderPaid:
                // The operator contradicts itself: it completed the order and now voids it. The payment stands.
                LogVoidOfPaidOrder(log, order.OrderNo, recorded.SettlementId, notice.SettlementId, notice.Reason);
                return StoreError.VoidConflict($"Order '{order.OrderNo}' is paid by settlement {recorded.SettlementId}; the payment stands.");
            case VoidResult.AlreadyRecorded:
                Debug.Assert(recorded.Void is not null, "A voided order has its void.");
                LogVoidRepeated(log, order.OrderNo, recorded.Void.SettlementId, notice.SettlementId);
                return null;
            default:
                LogVoided(log, order.OrderNo, order.StoreId, notice.SettlementId, notice.Reason);
                metrics.Voided(order.StoreId);
                return null;
        }
    }

    /// <summary>
    /// The goods of a paid order, for the holder of its receipt; a store never delivers goods for a
    /// settlement that did not complete.
    /// </summary>
    public async Task<Outcome<string>> DownloadAsync(string orderNo, string? receipt, CancellationToken cancellationToken)
    {
        var order = await database.FindAsync(orderNo, cancellationToken).ConfigureAwait(false);
        if (order is null)
        {
            return StoreError.OrderNotFound(orderNo);
        }

        if (order.State != OrderState.Paid || order.Receipt is null || receipt is null || !FixedTimeEquals(order.Receipt, receipt))
        {
            LogDownloadRefused(log, orderNo, order.State);
            return StoreError.NotPaid(orderNo);
        }

        // The items are read from the bill as signed, not from anything the buyer sends.
        var bill = SignedMessage.Verify<Bill>(order.Bill, keys.SetFor(order.StoreId), MessageTypes.Bill, out var error)
            ?? throw new InvalidOperationException($"The stored bill of order '{orderNo}' does not verify ({error}): the database was changed.");
        var store = directory.Find(order.StoreId);
        var contents = new List<string>(bill.Items.Count);
        foreach (var line in bill.Items)
        {
            var item = store?.Find(line.Sku);
            if (item is null)
            {
                return StoreError.ItemUnavailable(line.Sku);
            }

            contents.Add(item.Content);
        }

        return string.Join('\n', contents);
    }

    private async Task ForwardReceiptAsync(Guid settlementId, string receipt)
    {
        try
        {
            // Bounded by the operator client's timeout.
            await operatorClient.DeliverReceiptAsync(settlementId, receipt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            // Best effort: the wallet has the receipt too, and the operator can ask for it again.
            LogForwardFailed(log, settlementId, e.GetType().Name, e.Message);
        }
    }

    /// <summary>What of an operator's statement about an order differs from the order as billed here; null when nothing.</summary>
    private string? Differs(OrderRecord order, string storeId, string? mallId, Money amount, string billDigest) =>
        !string.Equals(storeId, order.StoreId, StringComparison.Ordinal) ? $"store '{storeId}'"
        : !string.Equals(mallId, directory.MallId, StringComparison.Ordinal) ? $"mall '{mallId ?? "(none)"}'"
        : amount != order.Amount ? $"amount {amount}"
        : !string.Equals(billDigest, SignedMessage.Digest(order.Bill), StringComparison.Ordinal) ? "bill digest"
        : null;

    private StoreError Mismatch(CompletionNotice notice, string detail)
    {
        LogMismatch(log, notice.SettlementId, notice.OrderNo, detail);
        return StoreError.CompletionMismatch(detail);
    }

    private static bool FixedTimeEquals(string expected, string given)
    {
        // Fixed time, so that a guesser learns nothing from how long a refusal takes.
        var expectedBytes = Encoding.UTF8.GetBytes(expected);
        var givenBytes = Encoding.UTF8.GetBytes(given);
        return expectedBytes.Length == givenBytes.Length && CryptographicOperations.FixedTimeEquals(expectedBytes, givenBytes);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Completion notice from the {Source} for order {OrderNo} refused: {Reason}")]
    private static partial void LogNoticeRefused(ILogger logger, CompletionSource source, string? orderNo, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Completion notice for settlement {SettlementId} refused: it names order {OrderNo}; {Detail}")]
    private static partial void LogMismatch(ILogger logger, Guid settlementId, string orderNo, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "Order {OrderNo} is paid by settlement {PaidBy}; settlement {SettlementId} paid it again and must be reversed")]
    private static partial void LogPaidTwice(ILogger logger, string orderNo, Guid? paidBy, Guid settlementId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Settlement {SettlementId} already paid another order; refused for order {OrderNo}")]
    private static partial void LogSettlementReused(ILogger logger, Guid settlementId, string orderNo);

    [LoggerMessage(Level = LogLevel.Error, Message = "Order {OrderNo} is cancelled (the operator voided settlement {VoidedSettlementId}); a completion notice for settlement {SettlementId} from the {Source} is refused")]
    private static partial void LogCompletedAfterVoid(ILogger logger, string orderNo, Guid voidedSettlementId, Guid settlementId, CompletionSource source);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Void notice refused: {Reason}")]
    private static partial void LogVoidRefused(ILogger logger, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Void notice for settlement {SettlementId} refused: it names order {OrderNo}; {Detail}")]
    private static partial void LogVoidMismatch(ILogger logger, Guid settlementId, string orderNo, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "Order {OrderNo} is paid by settlement {PaidBy}; the operator voids settlement {SettlementId} ({Reason}): refused, the payment stands")]
    private static partial void LogVoidOfPaidOrder(ILogger logger, string orderNo, Guid? paidBy, Guid settlementId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderNo} was cancelled before (void of settlement {VoidedSettlementId}); void of settlement {SettlementId} acknowledged again")]
    private static partial void LogVoidRepeated(ILogger logger, string orderNo, Guid voidedSettlementId, Guid settlementId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderNo} of store {StoreId} cancelled: the operator voided settlement {SettlementId} ({Reason})")]
    private static partial void LogVoided(ILogger logger, string orderNo, string storeId, Guid settlementId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderNo} of store {StoreId} paid by settlement {SettlementId} (delivered by the {Source}, repeat: {Repeat})")]
    private static partial void LogPaid(ILogger logger, string orderNo, string storeId, Guid settlementId, CompletionSource source, bool repeat);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not deliver the receipt of settlement {SettlementId} to the operator: {ErrorType}: {ErrorMessage}")]
    private static partial void LogForwardFailed(ILogger logger, Guid settlementId, string errorType, string errorMessage);

    [LoggerMessage(Level = LogLevel.Information, Message = "Download of order {OrderNo} refused (state {State})")]
    private static partial void LogDownloadRefused(ILogger logger, string orderNo, OrderState state);
}
