using Microsoft.AspNetCore.Http;
using OpenPurse.Hosting;

namespace OpenPurse.Operator.Api;

/// <summary>
/// An expected refusal: a stable code (documented in docs/errors.md), the HTTP status, and a
/// sentence for people. The API answers it as RFC 9457 problem details; a refusal changes nothing.
/// </summary>
internal sealed record Refusal(string Code, int Status, string Detail)
{
    public const string TypePrefix = Problems.TypePrefix;

    /// <summary>The code's fixed title (the code itself for a code without one, which a test forbids).</summary>
    public string Title => s_titles.GetValueOrDefault(Code, Code);

    public IResult ToResult() => TypedResults.Problem(
        detail: Detail,
        statusCode: Status,
        title: Title,
        type: TypePrefix + Code,
        extensions: new Dictionary<string, object?> { ["code"] = Code });

    public static Refusal RequestMalformed(string detail) => new("request.malformed", StatusCodes.Status400BadRequest, detail);

    public static Refusal BillMalformed(string detail) => new("bill.malformed", StatusCodes.Status400BadRequest, detail);

    public static Refusal BillSignatureInvalid(string detail) => new("bill.signature_invalid", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal BillUnknownStore(string detail) => new("bill.unknown_store", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal BillExpired(string detail) => new("bill.expired", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal BillNotYetValid(string detail) => new("bill.not_yet_valid", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal BillReplayed(string detail) => new("bill.replayed", StatusCodes.Status409Conflict, detail);

    public static Refusal CardMalformed(string detail) => new("card.greeting_malformed", StatusCodes.Status400BadRequest, detail);

    public static Refusal CardUnknown(string detail) => new("card.unknown", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal CardBlocked(string detail) => new("card.blocked", StatusCodes.Status403Forbidden, detail);

    public static Refusal CardAuthenticationFailed(string detail) => new("card.authentication_failed", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal CardInsufficientFunds(string detail) => new("card.insufficient_funds", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal CardBusy(string detail) => new("card.busy", StatusCodes.Status409Conflict, detail);

    public static Refusal OperatorBusy(string detail) => new("operator.busy", StatusCodes.Status503ServiceUnavailable, detail);

    public static Refusal CardAnswerInvalid(string detail) => new("card.answer_invalid", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal CardRefused(string detail) => new("card.refused", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal SettlementNotFound(string detail) => new("settlement.not_found", StatusCodes.Status404NotFound, detail);

    public static Refusal SettlementProofRequired(string detail) => new("settlement.proof_required", StatusCodes.Status401Unauthorized, detail);

    public static Refusal SettlementReplayed(string detail) => new("settlement.replayed", StatusCodes.Status409Conflict, detail);

    public static Refusal SettlementVoided(string detail) => new("settlement.voided", StatusCodes.Status409Conflict, detail);

    public static Refusal SettlementExpired(string detail) => new("settlement.expired", StatusCodes.Status409Conflict, detail);

    public static Refusal SettlementNotDisputed(string detail) => new("settlement.not_disputed", StatusCodes.Status409Conflict, detail);

    public static Refusal CardSyncRequired(string detail) => new("card.sync_required", StatusCodes.Status409Conflict, detail);

    public static Refusal CreditNotFound(string detail) => new("credit.not_found", StatusCodes.Status404NotFound, detail);

    public static Refusal ReceiptInvalid(string detail) => new("receipt.invalid", StatusCodes.Status422UnprocessableEntity, detail);

    public static Refusal StoreNotFound(string detail) => new("store.not_found", StatusCodes.Status404NotFound, detail);

    public static Refusal StoreInvalid(string detail) => new("store.invalid", StatusCodes.Status400BadRequest, detail);

    public static Refusal Unauthorized(string detail) => new("admin.unauthorized", StatusCodes.Status401Unauthorized, detail);

    public static Refusal Forbidden(string detail) => new("admin.forbidden", StatusCodes.Status403Forbidden, detail);

    private static readonly Dictionary<string, string> s_titles = new(StringComparer.Ordinal)
    {
        ["request.malformed"] = "The request is not well-formed.",
        ["bill.malformed"] = "The bill is not well-formed.",
        ["bill.signature_invalid"] = "The bill's signature (SIG1) does not verify.",
        ["bill.unknown_store"] = "The bill names a store or key the operator does not know.",
        ["bill.expired"] = "The bill has expired.",
        ["bill.not_yet_valid"] = "The bill is dated in the future.",
        ["bill.replayed"] = "The bill or its order number was used before.",
        ["card.greeting_malformed"] = "The card's answer is not well-formed.",
        ["card.unknown"] = "The card is not registered.",
        ["card.blocked"] = "The card is blocked.",
        ["card.authentication_failed"] = "The card could not be authenticated.",
        ["card.insufficient_funds"] = "The card holds less than the bill.",
        ["card.busy"] = "The card is in another settlement.",
        ["operator.busy"] = "The operator is at capacity.",
        ["card.answer_invalid"] = "The card's completion notice does not verify.",
        ["card.refused"] = "The card refused the debit.",
        ["settlement.not_found"] = "No such settlement.",
        ["settlement.not_disputed"] = "The settlement is not disputed: there is nothing to decide.",
        ["settlement.proof_required"] = "Only the settlement's store or wallet may read it.",
        ["settlement.replayed"] = "The settlement was completed with another answer.",
        ["settlement.voided"] = "The settlement was voided.",
        ["settlement.expired"] = "The card's answer came after the settlement's deadline.",
        ["card.sync_required"] = "The card must be synchronized first.",
        ["credit.not_found"] = "No such credit.",
        ["receipt.invalid"] = "The receipt (SIG4) does not verify or does not match.",
        ["store.not_found"] = "No such store.",
        ["store.invalid"] = "The store registration is not valid.",
        ["admin.unauthorized"] = "An admin token is required.",
        ["admin.forbidden"] = "The admin token's role does not allow this.",
    };
}

/// <summary>A value or the refusal that stands in its place.</summary>
internal readonly struct Result<T>
{
    private Result(T? value, Refusal? refusal) => (Value, Refusal) = (value, refusal);

    public T? Value { get; }

    public Refusal? Refusal { get; }

    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(Refusal refusal) => new(default, refusal);
}
