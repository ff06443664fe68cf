namespace OpenPurse.Protocol.Messages;

/// <summary>Round trip 1: the signed bill and the card's greeting (INITIALIZE UPDATE answer).</summary>
/// <param name="Bill">BILL+SIG1, compact JWS, as the store gave it.</param>
/// <param name="Profile">Signed (SIG2) or lean.</param>
/// <param name="CardGreeting">base64 of the card's INITIALIZE UPDATE answer data, for the host challenge derived from the bill.</param>
public sealed record StartSettlementRequest(string Bill, SettlementProfile Profile, string CardGreeting);

/// <summary>Round trip 1's answer: the two card commands, and SIG2 in profile "signed".</summary>
/// <param name="SettlementId">The settlement.</param>
/// <param name="ExternalAuthenticate">base64 EXTERNAL AUTHENTICATE APDU.</param>
/// <param name="Debit">base64 secured DEBIT APDU without the approval, which the wallet prepends.</param>
/// <param name="SettlementInfo">SIG2 over <see cref="Messages.SettlementInfo"/>; null in profile "lean".</param>
public sealed record StartSettlementResponse(Guid SettlementId, string ExternalAuthenticate, string Debit, string? SettlementInfo);

/// <summary>Round trip 2: the card's secured answer to the DEBIT (the completion notice PCN).</summary>
public sealed record CompleteSettlementRequest(string CardAnswer);

/// <summary>Round trip 2's answer: ACN+SIG3, and the store's receipt+SIG4 when the store answered in time.</summary>
public sealed record CompleteSettlementResponse(string CompletionNotice, string? Receipt);

/// <summary>The operator's notice to a store (or mall): the ACN; the store answers with its receipt.</summary>
public sealed record CompletionDelivery(string CompletionNotice);

/// <summary>A store's receipt, to the operator or the wallet.</summary>
public sealed record ReceiptDelivery(string Receipt);

/// <summary>A settlement's state as the operator reports it.</summary>
public sealed record SettlementView(Guid SettlementId, string State, string OrderNo, string StoreId, Money Amount, string? CompletionNotice, string? Receipt);
