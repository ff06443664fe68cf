using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store;

/// <summary>
/// The store's refusals (<see cref="Refusal"/>, answered as RFC 9457 problem details), each with
/// its code of the one vocabulary and the wording of its detail.
/// </summary>
internal static class StoreRefusals
{
    public static Refusal Malformed(string detail) =>
        new(ProblemCode.RequestMalformed, detail);

    public static Refusal UnknownStore(string storeId) =>
        new(ProblemCode.OrderUnknownStore, $"There is no store '{storeId}' here.");

    public static Refusal InvalidItems(string detail) =>
        new(ProblemCode.OrderInvalidItems, detail);

    public static Refusal InvalidQuantity(string sku, int quantity) =>
        new(ProblemCode.OrderInvalidQuantity, $"Item '{sku}' has quantity {quantity}; it must be 1 to {Catalog.StoreDirectory.QuantityMax}.");

    public static Refusal DuplicateItem(string sku) =>
        new(ProblemCode.OrderDuplicateItem, $"Item '{sku}' appears more than once; give its quantity instead.");

    public static Refusal UnknownItem(string storeId, string sku) =>
        new(ProblemCode.OrderUnknownItem, $"Store '{storeId}' sells no item '{sku}'.");

    public static Refusal OrderNotFound(string orderNo) =>
        new(ProblemCode.OrderNotFound, $"There is no order '{orderNo}'.");

    public static Refusal CompletionSignatureInvalid(string? reason) =>
        new(ProblemCode.CompletionSignatureInvalid, $"Refused: {reason ?? "signature.invalid"}.");

    public static Refusal CompletionMismatch(string detail) =>
        new(ProblemCode.CompletionMismatch, detail);

    public static Refusal CompletionConflict(string detail) =>
        new(ProblemCode.CompletionConflict, detail);

    public static Refusal VoidSignatureInvalid(string? reason) =>
        new(ProblemCode.VoidSignatureInvalid, $"Refused: {reason ?? "signature.invalid"}.");

    public static Refusal VoidMismatch(string detail) =>
        new(ProblemCode.VoidMismatch, detail);

    public static Refusal VoidConflict(string detail) =>
        new(ProblemCode.VoidConflict, detail);

    /// <param name="notice">What could not be checked: "completion notice" or "void notice".</param>
    public static Refusal OperatorUnavailable(string notice = "completion notice") =>
        new(ProblemCode.OperatorUnavailable, $"The {notice} cannot be checked now; deliver it again later.");

    public static Refusal StatementQueryInvalid(string detail) =>
        new(ProblemCode.StatementQueryInvalid, detail);

    public static Refusal NotPaid(string orderNo) =>
        new(ProblemCode.DownloadNotPaid, $"Order '{orderNo}' is not paid, or the receipt given is not its receipt.");

    public static Refusal ItemUnavailable(string sku) =>
        new(ProblemCode.DownloadItemUnavailable, $"Item '{sku}' cannot be delivered any more.");
}
