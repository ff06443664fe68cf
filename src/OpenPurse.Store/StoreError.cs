using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store;

/// <summary>
/// An expected refusal: a code of the one vocabulary (<see cref="ProblemCode"/>, documented in
/// docs/errors.md), which fixes its HTTP status and title, and a sentence for people. The API turns
/// it into RFC 9457 problem details. The factories word the detail of each kind of refusal.
/// </summary>
/// <param name="Problem">The code, e.g. <see cref="ProblemCode.OrderUnknownItem"/>; clients branch on it.</param>
/// <param name="Detail">What exactly was wrong with this request; never a secret.</param>
internal sealed record StoreError(ProblemCode Problem, string? Detail = null)
{
    public string Code => Problem.Code;

    public static StoreError Malformed(string detail) =>
        new(ProblemCode.RequestMalformed, detail);

    public static StoreError TooLarge(long? lengthMax) =>
        new(ProblemCode.RequestTooLarge, $"Bodies sent here are at most {lengthMax} bytes.");

    public static StoreError UnknownStore(string storeId) =>
        new(ProblemCode.OrderUnknownStore, $"There is no store '{storeId}' here.");

    public static StoreError InvalidItems(string detail) =>
        new(ProblemCode.OrderInvalidItems, detail);

    public static StoreError InvalidQuantity(string sku, int quantity) =>
        new(ProblemCode.OrderInvalidQuantity, $"Item '{sku}' has quantity {quantity}; it must be 1 to {Catalog.StoreDirectory.QuantityMax}.");

    public static StoreError DuplicateItem(string sku) =>
        new(ProblemCode.OrderDuplicateItem, $"Item '{sku}' appears more than once; give its quantity instead.");

    public static StoreError UnknownItem(string storeId, string sku) =>
        new(ProblemCode.OrderUnknownItem, $"Store '{storeId}' sells no item '{sku}'.");

    public static StoreError OrderNotFound(string orderNo) =>
        new(ProblemCode.OrderNotFound, $"There is no order '{orderNo}'.");

    public static StoreError CompletionSignatureInvalid(string? reason) =>
        new(ProblemCode.CompletionSignatureInvalid, $"Refused: {reason ?? "signature.invalid"}.");

    public static StoreError CompletionMismatch(string detail) =>
        new(ProblemCode.CompletionMismatch, detail);

    public static StoreError CompletionConflict(string detail) =>
        new(ProblemCode.CompletionConflict, detail);

    public static StoreError VoidSignatureInvalid(string? reason) =>
        new(ProblemCode.VoidSignatureInvalid, $"Refused: {reason ?? "signature.invalid"}.");

    public static StoreError VoidMismatch(string detail) =>
        new(ProblemCode.VoidMismatch, detail);

    public static StoreError VoidConflict(string detail) =>
        new(ProblemCode.VoidConflict, detail);

    /// <param name="notice">What could not be checked: "completion notice" or "void notice".</param>
    public static StoreError OperatorUnavailable(string notice = "completion notice") =>
        new(ProblemCode.OperatorUnavailable, $"The {notice} cannot be checked now; deliver it again later.");

    public static StoreError StatementQueryInvalid(string detail) =>
        new(ProblemCode.StatementQueryInvalid, detail);

    public static StoreError NotPaid(string orderNo) =>
        new(ProblemCode.DownloadNotPaid, $"Order '{orderNo}' is not paid, or the receipt given is not its receipt.");

    public static StoreError ItemUnavailable(string sku) =>
        new(ProblemCode.DownloadItemUnavailable, $"Item '{sku}' cannot be delivered any more.");
}

/// <summary>Either a value or the reason there is none.</summary>
internal readonly struct Outcome<T>
    where T : class
{
    private Outcome(T? value, StoreError? error)
    {
        Value = value;
        Error = error;
    }

    public T? Value { get; }

    public StoreError? Error { get; }

    public static implicit operator Outcome<T>(T value) => new(value ?? throw new ArgumentNullException(nameof(value)), null);

    public static implicit operator Outcome<T>(StoreError error) => new(null, error ?? throw new ArgumentNullException(nameof(error)));
}
