namespace OpenPurse.Store;

/// <summary>
/// An expected refusal: a stable <see cref="Code"/> for programs, an HTTP status and a sentence
/// for people. The API turns it into RFC 9457 problem details.
/// </summary>
/// <param name="Code">Stable error code, e.g. <c>order.unknown_item</c>; clients branch on it.</param>
/// <param name="Status">HTTP status code of the refusal.</param>
/// <param name="Title">A short, fixed summary of the kind of refusal.</param>
/// <param name="Detail">What exactly was wrong with this request; never a secret.</param>
internal sealed record StoreError(string Code, int Status, string Title, string? Detail = null)
{
    public static StoreError Malformed(string detail) =>
        new("request.malformed", StatusCodes.Status400BadRequest, "The request is malformed.", detail);

    public static StoreError TooLarge(long? lengthMax) =>
        new("request.too_large", StatusCodes.Status413PayloadTooLarge, "The request's body is larger than this endpoint reads.", $"Bodies sent here are at most {lengthMax} bytes.");

    public static StoreError UnknownStore(string storeId) =>
        new("order.unknown_store", StatusCodes.Status422UnprocessableEntity, "No such store.", $"There is no store '{storeId}' here.");

    public static StoreError InvalidItems(string detail) =>
        new("order.invalid_items", StatusCodes.Status422UnprocessableEntity, "The order's items are not acceptable.", detail);

    public static StoreError InvalidQuantity(string sku, int quantity) =>
        new("order.invalid_quantity", StatusCodes.Status422UnprocessableEntity, "A quantity is out of range.",
            $"Item '{sku}' has quantity {quantity}; it must be 1 to {Catalog.StoreDirectory.QuantityMax}.");

    public static StoreError DuplicateItem(string sku) =>
        new("order.duplicate_item", StatusCodes.Status422UnprocessableEntity, "An item is listed twice.", $"Item '{sku}' appears more than once; give its quantity instead.");

    public static StoreError UnknownItem(string storeId, string sku) =>
        new("order.unknown_item", StatusCodes.Status422UnprocessableEntity, "No such item.", $"Store '{storeId}' sells no item '{sku}'.");

    public static StoreError OrderNotFound(string orderNo) =>
        new("order.not_found", StatusCodes.Status404NotFound, "No such order.", $"There is no order '{orderNo}'.");

    public static StoreError CompletionSignatureInvalid(string? reason) =>
        new("completion.signature_invalid", StatusCodes.Status422UnprocessableEntity, "The completion notice's signature (SIG3) does not verify.",
            $"Refused: {reason ?? "signature.invalid"}.");

    public static StoreError CompletionMismatch(string detail) =>
        new("completion.mismatch", StatusCodes.Status422UnprocessableEntity, "The completion notice does not match the order.", detail);

    public static StoreError CompletionConflict(string detail) =>
        new("completion.conflict", StatusCodes.Status409Conflict, "One order, one outcome: this notice conflicts with a recorded payment or void.", detail);

    public static StoreError VoidSignatureInvalid(string? reason) =>
        new("void.signature_invalid", StatusCodes.Status422UnprocessableEntity, "The void notice's signature does not verify.",
            $"Refused: {reason ?? "signature.invalid"}.");

    public static StoreError VoidMismatch(string detail) =>
        new("void.mismatch", StatusCodes.Status422UnprocessableEntity, "The void notice does not match the order.", detail);

    public static StoreError VoidConflict(string detail) =>
        new("void.conflict", StatusCodes.Status409Conflict, "The order is paid: its payment stands and it cannot be voided.", detail);

    /// <param name="notice">What could not be checked: "completion notice" or "void notice".</param>
    public static StoreError OperatorUnavailable(string notice = "completion notice") =>
        new("operator.unavailable", StatusCodes.Status503ServiceUnavailable, "The operator's keys could not be fetched.",
            $"The {notice} cannot be checked now; deliver it again later.");

    public static StoreError NotPaid(string orderNo) =>
        new("download.not_paid", StatusCodes.Status403Forbidden, "The goods are delivered only for a completed payment.",
            $"Order '{orderNo}' is not paid, or the receipt given is not its receipt.");

    public static StoreError ItemUnavailable(string sku) =>
        new("download.item_unavailable", StatusCodes.Status410Gone, "An item of the order is no longer in the catalog.",
            $"Item '{sku}' cannot be delivered any more.");
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
