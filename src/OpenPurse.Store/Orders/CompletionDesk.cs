using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
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
/// payment and issues the receipt (SIG4); hands out the goods for a paid order's receipt.
/// </summary>
internal sealed partial class CompletionDesk(
    StoreDirectory directory, MemberKeys keys, OrderDatabase database, OperatorKeys operatorKeys, OperatorClient operatorClient, TimeProvider time, ILogger<CompletionDesk> log)
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
        var mismatch =
            !string.Equals(notice.StoreId, order.StoreId, StringComparison.Ordinal) ? $"store '{notice.StoreId}'"
            : !string.Equals(notice.MallId, directory.MallId, StringComparison.Ordinal) ? $"mall '{notice.MallId ?? "(none)"}'"
            : notice.Amount != order.Amount ? $"amount {notice.Amount}"
            : !string.Equals(notice.BillDigest, SignedMessage.Digest(order.Bill), StringComparison.Ordinal) ? "bill digest"
            : null;
        if (mismatch is not null)
        {
            return Mismatch(notice, $"The notice's {mismatch} differs from order '{order.OrderNo}'.");
        }

        var now = time.GetUtcNow();
        var key = keys.For(order.StoreId);
        var (result, paid) = await database.RecordPaymentAsync(
            order.OrderNo,
            notice.SettlementId,
            compact,
            now,
            () => SignedMessage.Sign(key, new Receipt(notice.SettlementId, order.OrderNo, order.StoreId, order.Amount, SignedMessage.Digest(compact), now), MessageTypes.Receipt),
            cancellationToken).ConfigureAwait(false);

        if (result == PaymentResult.PaidByAnotherSettlement)
        {
            // Two settlements for one order mean the buyer paid twice: the operator must reverse one.
            LogPaidTwice(log, order.OrderNo, paid.SettlementId, notice.SettlementId);
            return StoreError.CompletionConflict($"Order '{order.OrderNo}' is already paid; this notice names a different settlement.");
        }

        if (result == PaymentResult.SettlementPaidAnotherOrder)
        {
            LogSettlementReused(log, notice.SettlementId, order.OrderNo);
            return StoreError.CompletionConflict($"Settlement {notice.SettlementId} already paid another order; it cannot pay '{order.OrderNo}' too.");
        }

        Debug.Assert(paid.Receipt is not null && paid.SettlementId == notice.SettlementId, "A recorded payment has this settlement's receipt.");
        Debug.Assert(SignedMessage.Verify<Receipt>(paid.Receipt, keys.SetFor(order.StoreId), MessageTypes.Receipt, out _)?.OrderNo == order.OrderNo, "The receipt verifies with the member store's key.");
        LogPaid(log, order.OrderNo, order.StoreId, notice.SettlementId, source, result == PaymentResult.AlreadyRecorded);

        if (source == CompletionSource.Wallet)
        {
            // Sent again on every wallet delivery, so a wallet that retries also retries this. Not tied to
            // the wallet's request: a wallet that hangs up does not stop the operator getting the receipt.
            await ForwardReceiptAsync(notice.SettlementId, paid.Receipt).ConfigureAwait(false);
        }

        return new ReceiptDelivery(paid.Receipt);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Order {OrderNo} of store {StoreId} paid by settlement {SettlementId} (delivered by the {Source}, repeat: {Repeat})")]
    private static partial void LogPaid(ILogger logger, string orderNo, string storeId, Guid settlementId, CompletionSource source, bool repeat);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not deliver the receipt of settlement {SettlementId} to the operator: {ErrorType}: {ErrorMessage}")]
    private static partial void LogForwardFailed(ILogger logger, Guid settlementId, string errorType, string errorMessage);

    [LoggerMessage(Level = LogLevel.Information, Message = "Download of order {OrderNo} refused (state {State})")]
    private static partial void LogDownloadRefused(ILogger logger, string orderNo, OrderState state);
}
