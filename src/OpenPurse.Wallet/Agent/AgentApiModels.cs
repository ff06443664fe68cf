using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Agent;

/// <summary>A payment asked for: the store's bill and the profile to settle it in.</summary>
internal sealed record PaymentBody(string Bill, SettlementProfile Profile = SettlementProfile.Signed);

/// <summary>A top-up asked for: the amount, e.g. "20.00 EUR".</summary>
internal sealed record TopUpBody(string Amount);

/// <summary>Whether a card is in the reader; nothing else about it.</summary>
internal sealed record CardView(bool Present);

internal sealed record PaymentCreated(Guid PaymentId, string ApprovalUrl, string State);

internal sealed record TopUpCreated(Guid TopUpId, string ApprovalUrl, string State);

/// <summary>Why a payment or top-up failed or was declined.</summary>
internal sealed record ErrorView(string Code, string Detail, bool CardDebited)
{
    public static ErrorView? Of(OperationError? error) => error is null ? null : new(error.Code, error.Detail, error.CardDebited);
}

internal sealed record PaymentResultView(string OrderNo, string Receipt, string Content);

/// <summary>A payment as its page sees it.</summary>
internal sealed record PaymentStatus(Guid PaymentId, string State, string? OrderNo, string? StoreId, string? Amount, ErrorView? Error, PaymentResultView? Result)
{
    public static PaymentStatus Of(AgentOperation payment)
    {
        lock (payment.Gate)
        {
            var bill = payment.Bill;
            var result = payment.Result;
            return new PaymentStatus(
                payment.Id,
                payment.State,
                bill?.OrderNo,
                bill?.StoreId,
                bill?.Amount.ToString(),
                ErrorView.Of(payment.Error),
                result is null ? null : new PaymentResultView(result.OrderNo, result.ReceiptJws, result.Content));
        }
    }
}

internal sealed record TopUpResultView(string Amount, string BalanceAfter, string State);

/// <summary>A top-up as its page sees it.</summary>
internal sealed record TopUpStatus(Guid TopUpId, string State, string Amount, ErrorView? Error, TopUpResultView? Result)
{
    public static TopUpStatus Of(AgentOperation topUp)
    {
        lock (topUp.Gate)
        {
            var result = topUp.TopUpResult;
            return new TopUpStatus(
                topUp.Id,
                topUp.State,
                topUp.Amount.ToString(),
                ErrorView.Of(topUp.Error),
                result is null ? null : new TopUpResultView(result.Amount.ToString(), result.Balance.ToString(), result.State));
        }
    }
}
