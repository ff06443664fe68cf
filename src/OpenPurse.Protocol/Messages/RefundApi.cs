namespace OpenPurse.Protocol.Messages;

// The messages of a refund by a store (docs/protocol.md, "Refund"): the store signs a refund
// request for a settlement it was paid; the operator records the value as owed to the card and
// answers with its signed notice; the card takes the value as a CREDIT at its next sync, and the
// notice then says so. Written and read with ProtocolJson.Options.

/// <summary>
/// A store's request to give back (part of) a payment it was paid, signed by the store with a key
/// it registered (<see cref="MessageTypes.RefundRequest"/>). The same signed request sent again
/// answers the first answer again; the same <paramref name="RefundId"/> with another request is refused.
/// </summary>
/// <param name="RefundId">Chosen by the store, new for each refund: the refund's id and its idempotency key.</param>
/// <param name="SettlementId">The settlement that paid the store.</param>
/// <param name="StoreId">The store that was paid and signs the request.</param>
/// <param name="Amount">What goes back to the card: positive, in the settlement's currency; with the earlier refunds at most what was paid.</param>
/// <param name="Reason">Why, in a few words for people (at most <see cref="RefundRequest.ReasonLengthMax"/> characters), or null.</param>
/// <param name="IssuedAt">When the store signed it; the operator accepts it for a few minutes only.</param>
public sealed record RefundRequest(Guid RefundId, Guid SettlementId, string StoreId, Money Amount, string? Reason, DateTimeOffset IssuedAt)
{
    /// <summary>The longest reason the operator records.</summary>
    public const int ReasonLengthMax = 200;
}

/// <summary>
/// The operator's word on a refund, signed with its key (<see cref="MessageTypes.RefundNotice"/>):
/// what was refunded of which payment, and whether the card has taken it.
/// </summary>
/// <param name="RefundId">The refund.</param>
/// <param name="SettlementId">The settlement it gives back from.</param>
/// <param name="OrderNo">That settlement's order number.</param>
/// <param name="StoreId">The store that refunds.</param>
/// <param name="Amount">This refund's amount.</param>
/// <param name="RefundedTotal">Everything refunded of the settlement so far, this refund included.</param>
/// <param name="State"><see cref="RefundNoticeStates.Owed"/> or <see cref="RefundNoticeStates.Credited"/>.</param>
/// <param name="CardMasked">The card the value goes back to, masked.</param>
/// <param name="At">When the refund entered its state.</param>
public sealed record RefundNotice(Guid RefundId, Guid SettlementId, string OrderNo, string StoreId, Money Amount, Money RefundedTotal, string State, string CardMasked, DateTimeOffset At);

/// <summary>The states a <see cref="RefundNotice"/> names.</summary>
public static class RefundNoticeStates
{
    /// <summary>Recorded: the store's account gave the amount; the card takes it at its next sync.</summary>
    public const string Owed = "owed";

    /// <summary>The card took the CREDIT: the value is back on it.</summary>
    public const string Credited = "credited";
}

/// <summary>The body of <c>POST /v1/refunds</c>.</summary>
/// <param name="Request">The store's <see cref="RefundRequest"/>, a compact JWS.</param>
public sealed record RefundSubmission(string Request);

/// <summary>The answer of <c>POST /v1/refunds</c> and <c>GET /v1/refunds/{id}</c>.</summary>
/// <param name="Notice">The operator's <see cref="RefundNotice"/>, a compact JWS.</param>
public sealed record RefundAnswer(string Notice);
