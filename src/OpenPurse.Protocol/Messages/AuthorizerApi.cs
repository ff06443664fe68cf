namespace OpenPurse.Protocol.Messages;

// The bodies of the credit authorizer's HTTP API (docs/authorizer.md), which the operator calls to
// have a credit card charged for a top-up: authorize, then capture once the e-purse card proved
// that it took the value, or void. Written and read with ProtocolJson.Options.

/// <summary>
/// A request to authorize a charge (<c>POST /v1/authorizations</c>, with an <c>Idempotency-Key</c> header).
/// </summary>
/// <param name="Amount">What to charge, above zero, in money (not points).</param>
/// <param name="Reference">The caller's reference for the charge (the operator's top-up id), 1 to 64 visible ASCII characters.</param>
/// <param name="CardData">
/// The card's number, expiry and PIN (<see cref="CardData"/>) as a compact JWE encrypted to the
/// authorizer's key (<c>GET /v1/keys</c>) with ECDH-ES and A256GCM: the caller forwards it unopened.
/// </param>
public sealed record AuthorizeRequest(Money Amount, string Reference, string CardData);

/// <summary>
/// What the card holder's wallet encrypts for the authorizer: the plaintext of
/// <see cref="AuthorizeRequest.CardData"/>. Only the authorizer ever reads it.
/// </summary>
/// <param name="Pan">The card number, 12 to 19 digits.</param>
/// <param name="Expiry">The last month the card is valid, <c>MM/YY</c>.</param>
/// <param name="Pin">The card's PIN, 4 to 12 digits.</param>
public sealed record CardData(string Pan, string Expiry, string Pin);

/// <summary>The authorizer's decision on a charge.</summary>
public enum AuthorizationStatus
{
    /// <summary>The amount is held on the card until it is captured, voided, or the authorization expires.</summary>
    Approved,

    /// <summary>Nothing is held; <see cref="CreditAuthorization.DeclineCode"/> says why.</summary>
    Declined,
}

/// <summary>
/// An authorization as the authorizer keeps it: the answer of <c>POST /v1/authorizations</c>,
/// <c>GET /v1/authorizations/{id}</c>, and of its capture and void.
/// </summary>
/// <param name="Id">The authorizer's id of the authorization.</param>
/// <param name="Reference">The caller's reference, as sent.</param>
/// <param name="Status">Approved or declined.</param>
/// <param name="DeclineCode">Why it was declined (<c>do_not_honor</c>, <c>incorrect_pin</c>, <c>limit_exceeded</c>); null when approved.</param>
/// <param name="Amount">The amount authorized (or asked for, when declined).</param>
/// <param name="CardToken">A token for the card: the same card gives the same token here, and the number cannot be recovered from it.</param>
/// <param name="LastFour">The card number's last four digits, to show the card holder.</param>
/// <param name="CreatedAt">When it was decided.</param>
/// <param name="ExpiresAt">Until when an approved authorization may be captured; null when declined.</param>
/// <param name="Captured">The amount captured, or null while nothing is.</param>
/// <param name="CapturedAt">When it was captured, or null.</param>
/// <param name="VoidedAt">When it was voided, or null.</param>
public sealed record CreditAuthorization(
    Guid Id,
    string Reference,
    AuthorizationStatus Status,
    string? DeclineCode,
    Money Amount,
    string CardToken,
    string LastFour,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    Money? Captured,
    DateTimeOffset? CapturedAt,
    DateTimeOffset? VoidedAt);

/// <summary>
/// Takes the money of an approved authorization (<c>POST /v1/authorizations/{id}/capture</c>):
/// the caller has its proof that the value reached the e-purse card. Capturing again with the same
/// amount answers the same capture; a void, or a capture of another amount, is refused afterwards.
/// </summary>
/// <param name="Amount">At most the authorized amount, in its currency, above zero.</param>
public sealed record CaptureRequest(Money Amount);

/// <summary>
/// Releases an approved authorization (<c>POST /v1/authorizations/{id}/void</c>): the value never
/// reached the e-purse card. Voiding again answers the same void; a capture is refused afterwards.
/// </summary>
/// <param name="Reason">Why, for the authorizer's records (e.g. <c>card_not_loaded</c>), 1 to 64 visible ASCII characters.</param>
public sealed record VoidRequest(string Reason);
