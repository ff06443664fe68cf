using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Purchase;

/// <summary>A finished purchase: what was paid, the proofs, the goods, and what it cost in round trips.</summary>
public sealed record PurchaseResult
{
    /// <summary>The store's (or mall's) order number.</summary>
    public required string OrderNo { get; init; }

    /// <summary>The operator's settlement id.</summary>
    public required Guid SettlementId { get; init; }

    /// <summary>The profile the purchase followed.</summary>
    public required SettlementProfile Profile { get; init; }

    /// <summary>The card that paid, masked.</summary>
    public required string CardMasked { get; init; }

    /// <summary>The verified bill (SIG1) the person approved.</summary>
    public required Bill Bill { get; init; }

    /// <summary>The amount paid.</summary>
    public Money Amount => Bill.Amount;

    /// <summary>The balance shown before the payment: SIG2's in profile "signed", the card's own in "lean".</summary>
    public required Money BalanceBefore { get; init; }

    /// <summary>The balance the card reports after the payment (GET DATA).</summary>
    public required Money BalanceAfter { get; init; }

    /// <summary>The verified settlement completion information ACN (SIG3).</summary>
    public required CompletionNotice CompletionNotice { get; init; }

    /// <summary>The ACN as signed, compact JWS.</summary>
    public required string CompletionNoticeJws { get; init; }

    /// <summary>The verified receipt (SIG4).</summary>
    public required Receipt Receipt { get; init; }

    /// <summary>The receipt as signed, compact JWS: the proof of payment the store's download asks for.</summary>
    public required string ReceiptJws { get; init; }

    /// <summary>True when the operator brought no receipt and the wallet took the ACN to the store itself.</summary>
    public required bool ReceiptFromStore { get; init; }

    /// <summary>The goods: the downloaded content.</summary>
    public required string Content { get; init; }

    /// <summary>Settlement requests to the operator: 2 (round trips 1 and 2), more only when round trip 2 was retried.</summary>
    public required int OperatorRoundTrips { get; init; }

    /// <summary>Key set requests to the operator; none when the sets were cached from an earlier purchase.</summary>
    public required int KeySetRequests { get; init; }

    /// <summary>Requests to the store: catalog, estimate, order, download, and the ACN when the operator brought no receipt.</summary>
    public required int StoreRequests { get; init; }

    /// <summary>Commands the payment sent to the card: SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, DEBIT.</summary>
    public required int CardCommands { get; init; }

    /// <summary>All commands sent to the card, with the GET DATA that reads the new balance for display.</summary>
    public required int CardCommandsTotal { get; init; }
}
