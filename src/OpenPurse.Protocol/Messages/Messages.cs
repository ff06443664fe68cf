using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenPurse.Protocol.Jose;

namespace OpenPurse.Protocol.Messages;

/// <summary>The JWS <c>typ</c> of each signed message, so that one kind can never pass as another.</summary>
public static class MessageTypes
{
    /// <summary>BILL, signed by the store (SIG1).</summary>
    public const string Bill = "openpurse-bill+jws";

    /// <summary>Settlement information, signed by the operator (SIG2, profile "signed").</summary>
    public const string SettlementInfo = "openpurse-settlement+jws";

    /// <summary>Settlement completion information ACN, signed by the operator (SIG3).</summary>
    public const string CompletionNotice = "openpurse-acn+jws";

    /// <summary>Settlement completion receipt, signed by the store (SIG4).</summary>
    public const string Receipt = "openpurse-receipt+jws";

    /// <summary>The operator's notice that a settlement will not be paid, signed like the ACN.</summary>
    public const string VoidNotice = "openpurse-void+jws";

    /// <summary>Value update information: a credit for the card, signed by the operator (SIG5).</summary>
    public const string ValueUpdate = "openpurse-value-update+jws";

    /// <summary>A store's request to read one of its settlements, signed by the store.</summary>
    public const string SettlementQuery = "openpurse-settlement-query+jws";

    /// <summary>The operator's request for a store's statement of what it recorded as paid, signed by the operator.</summary>
    public const string StatementQuery = "openpurse-statement-query+jws";

    /// <summary>A store's statement of the payments it recorded, signed by the store.</summary>
    public const string Statement = "openpurse-statement+jws";

    /// <summary>The credit authorizer's encryption keys, vouched for by the operator's signature.</summary>
    public const string AuthorizerKeys = "openpurse-authorizer-keys+jws";

    /// <summary>A store's request to refund (part of) a settlement it was paid, signed by the store.</summary>
    public const string RefundRequest = "openpurse-refund+jws";

    /// <summary>The operator's notice of a refund's state, signed by the operator, for the store.</summary>
    public const string RefundNotice = "openpurse-refund-notice+jws";

    /// <summary>Value decrease information: a debit the card holder asked for (a transfer, a cash-out), signed by the operator.</summary>
    public const string ValueDecrease = "openpurse-value-decrease+jws";
}

/// <summary>Which flow of the specification a purchase follows.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720:Identifier contains type name", Justification = "The profile's name in the design.")]
public enum SettlementProfile
{
    /// <summary>ST1–ST20: the operator signs the balance and the debit (SIG2); the wallet checks it.</summary>
    Signed,

    /// <summary>ST101–ST112: the settlement information is only encrypted for the card; no SIG2.</summary>
    Lean,
}

/// <summary>One line of a bill.</summary>
public sealed record BillItem(string Sku, string Title, int Quantity, Money Amount);

/// <summary>
/// The settlement request information BILL (ST5): what the store charges, for which order, until when.
/// Signed by the store's key as SIG1 and carried by the wallet to the operator.
/// </summary>
/// <param name="OrderNo">Unique per issuer (the mall when there is one, else the store); the operator refuses a second bill with it.</param>
/// <param name="StoreId">The (member) store whose key signs and who is paid.</param>
/// <param name="MallId">The mall that issued the order number and receives the completion, if any.</param>
/// <param name="Amount">The sum charged.</param>
/// <param name="Items">What is bought, for the wallet to show.</param>
/// <param name="IssuedAt">When the store made the bill.</param>
/// <param name="ExpiresAt">After this the operator refuses it.</param>
public sealed record Bill(string OrderNo, string StoreId, string? MallId, Money Amount, IReadOnlyList<BillItem> Items, DateTimeOffset IssuedAt, DateTimeOffset ExpiresAt)
{
    /// <summary>The order numbers' namespace: the mall's when there is one, else the store's.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Issuer => MallId ?? StoreId;

    /// <summary>
    /// Whether the bill adds up: it has lines, each of a positive quantity and a positive amount in
    /// the bill's currency, and its positive amount is their sum. A sum beyond what
    /// <see cref="Money"/> holds does not add up, rather than throw: a party checking a bill
    /// (the operator, the wallet) refuses such a bill as it refuses any other that does not add up.
    /// </summary>
    public bool AddsUp()
    {
        if (Items is not { Count: > 0 } || !Amount.IsPositive)
        {
            return false;
        }

        var sum = Money.Zero(Amount.Currency);
        foreach (var item in Items)
        {
            if (item is null || item.Quantity <= 0 || !item.Amount.IsPositive || !item.Amount.Currency.Equals(Amount.Currency))
            {
                return false;
            }

            try
            {
                sum += item.Amount;
            }
            catch (OverflowException)
            {
                return false;
            }
        }

        return sum == Amount;
    }
}

/// <summary>
/// Settlement information (ST14, SIG2 in profile "signed"): the balance the operator read from the
/// card under its MAC, and the debit it built, bound to the bill.
/// </summary>
/// <param name="SettlementId">The operator's settlement id (the card writes it in its log).</param>
/// <param name="CardId">The card's full number (the wallet's own card).</param>
/// <param name="Balance">Balance information BI, as read from the card.</param>
/// <param name="Amount">The amount the debit subtracts.</param>
/// <param name="BillDigest">base64url SHA-256 of the signed bill.</param>
/// <param name="DebitDigest">base64url SHA-256 of the secured DEBIT command bytes.</param>
public sealed record SettlementInfo(Guid SettlementId, string CardId, Money Balance, Money Amount, string BillDigest, string DebitDigest);

/// <summary>
/// Settlement completion information ACN (ST19, SIG3): the operator's statement that the card paid.
/// </summary>
public sealed record CompletionNotice(Guid SettlementId, string OrderNo, string StoreId, string? MallId, Money Amount, string BillDigest, string CardMasked, uint CardCounter, DateTimeOffset CompletedAt);

/// <summary>
/// The operator's final word that a settlement is not paid (signed with the ACN's key): the card
/// provably never ran its debit (<see cref="VoidReasons.NotRun"/>), or no word came from the card
/// before the deadline (<see cref="VoidReasons.Expired"/>; a debit that turns up later is returned to
/// the card, never paid to the store). The store must not deliver the order.
/// </summary>
public sealed record VoidNotice(Guid SettlementId, string OrderNo, string StoreId, string? MallId, Money Amount, string BillDigest, string Reason, DateTimeOffset VoidedAt);

/// <summary>Why a settlement was voided.</summary>
public static class VoidReasons
{
    /// <summary>The card opened a later session at the same counter: the debit can never run.</summary>
    public const string NotRun = "not_run";

    /// <summary>The settlement's deadline passed with no completion.</summary>
    public const string Expired = "expired";

    /// <summary>
    /// The card paid, but the store refused the completion notice (or could not be told); the
    /// operator returns the amount to the card instead.
    /// </summary>
    public const string Returned = "returned";
}

/// <summary>
/// Value update information (SIG5): what a CREDIT adds to the card and why, checked by the wallet
/// before it passes the CREDIT on: the return of a debit whose settlement did not complete, a
/// top-up, or value owed to the card (a refund, a transfer, points; <see cref="ValueUpdatePurposes"/>).
/// </summary>
/// <param name="ValueUpdateId">The CREDIT's transaction reference (the card writes it in its log).</param>
/// <param name="CardId">The card's full number.</param>
/// <param name="Amount">What the CREDIT adds.</param>
/// <param name="Balance">The balance the card reported before it.</param>
/// <param name="Purpose">What the value is for: one of <see cref="ValueUpdatePurposes"/>.</param>
/// <param name="SourceId">What it comes from: the settlement whose debit it returns or that earned the points, the top-up, the refund or the transfer.</param>
/// <param name="OrderDigest">base64url of the digest in the CREDIT's order, which the wallet's approval repeats.</param>
/// <param name="CreditDigest">base64url SHA-256 of the secured CREDIT command bytes.</param>
public sealed record ValueUpdate(Guid ValueUpdateId, string CardId, Money Amount, Money Balance, string Purpose, Guid SourceId, string OrderDigest, string CreditDigest);

/// <summary>What a value update is for (<see cref="ValueUpdate.Purpose"/>).</summary>
public static class ValueUpdatePurposes
{
    /// <summary>The return of a debit whose settlement did not complete; the source is the settlement.</summary>
    public const string Return = "return";

    /// <summary>A top-up paid by credit card; the source is the top-up.</summary>
    public const string TopUp = "topup";

    /// <summary>A store's refund of (part of) a payment, taken at the card's next sync; the source is the refund.</summary>
    public const string Refund = "refund";

    /// <summary>Value another card sent this one, taken at its next sync; the source is the transfer.</summary>
    public const string Transfer = "transfer";

    /// <summary>Points a store awarded for a purchase, taken at the card's next sync; the source is the settlement.</summary>
    public const string Points = "points";

    /// <summary>Value a lost card's replacement takes from the old card, at its next sync; the source is the carry (docs/operations.md, "A card's life").</summary>
    public const string Replacement = "replacement";
}

/// <summary>Settlement completion receipt (ST112, SIG4): the store's acknowledgement of the ACN.</summary>
/// <param name="SettlementId">The settlement the ACN completed.</param>
/// <param name="OrderNo">The order it paid.</param>
/// <param name="StoreId">The (member) store that signs the receipt.</param>
/// <param name="Amount">What was paid.</param>
/// <param name="CompletionDigest">base64url digest of the ACN it acknowledges.</param>
/// <param name="IssuedAt">When the store signed it.</param>
/// <param name="Points">
/// Points (<c>PTS</c>) the store awards for the purchase, or null: the operator owes them to the
/// card, which takes them at its next sync, and takes them from the store's points account.
/// </param>
public sealed record Receipt(Guid SettlementId, string OrderNo, string StoreId, Money Amount, string CompletionDigest, DateTimeOffset IssuedAt, Money? Points = null);

/// <summary>Signing and verifying typed messages as compact JWS.</summary>
public static class SignedMessage
{
    /// <summary>Signs a message: the payload is its <see cref="ProtocolJson"/> bytes.</summary>
    public static string Sign<T>(ISigningKey key, T message, string type)
        where T : notnull => Jws.Sign(key, ProtocolJson.ToUtf8(message), type);

    /// <summary>Verifies and reads a message; null with the reason when refused.</summary>
    public static T? Verify<T>(string? compact, JsonWebKeySet keys, string type, out string? error)
        where T : class
    {
        if (!Jws.TryVerify(compact, keys, type, out var payload, out var jwsError))
        {
            error = "signature." + jwsError switch
            {
                JwsError.UnknownKey => "unknown_key",
                JwsError.WrongType => "wrong_type",
                JwsError.BadSignature => "invalid",
                JwsError.AlgorithmNotAllowed => "algorithm_not_allowed",
                JwsError.UnsupportedCritical => "unsupported_critical",
                JwsError.HighS => "high_s",
                _ => "malformed",
            };
            return null;
        }

        try
        {
            error = null;
            return JsonSerializer.Deserialize<T>(payload, ProtocolJson.Options) ?? throw new JsonException("null");
        }
        catch (JsonException)
        {
            error = "payload.malformed";
            return null;
        }
    }

    /// <summary>
    /// base64url(SHA-256(ASCII of the JWS signing input)): how a signed message is named elsewhere
    /// (a bill in the settlement information, the ACN and the card's log; an ACN in its receipt).
    /// </summary>
    public static string Digest(string compact) => System.Buffers.Text.Base64Url.EncodeToString(DigestBytes(compact));

    /// <summary>
    /// SHA-256 of the JWS signing input (<c>header.payload</c>, RFC 7515 §5.1), not of the whole
    /// compact form: a message's name depends only on the bytes its signature covers, never on
    /// the signature's own bytes, which are not unique to the message (ECDSA is randomised, and
    /// a signature has a mirror image that verifies as well).
    /// </summary>
    /// <exception cref="ArgumentException">Not a compact JWS (no signature part).</exception>
    public static byte[] DigestBytes(string compact)
    {
        ArgumentNullException.ThrowIfNull(compact);
        var signatureDot = compact.LastIndexOf('.');
        if (signatureDot < 0)
        {
            throw new ArgumentException("Not a compact JWS.", nameof(compact));
        }

        return SHA256.HashData(Encoding.ASCII.GetBytes(compact, 0, signatureDot));
    }

    /// <summary>The host challenge for a bill: the first 8 bytes of its digest, so a card answer belongs to one bill only.</summary>
    public static byte[] HostChallengeFor(string billCompact) => DigestBytes(billCompact)[..Channel.Scp03.ChallengeLength];
}
