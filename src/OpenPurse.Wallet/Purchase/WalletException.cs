namespace OpenPurse.Wallet.Purchase;

/// <summary>
/// Why the wallet stopped: a stable <see cref="Code"/> for programs and a sentence for the person.
/// Every expected failure of a purchase (a bad signature, a refusal by the store, the operator or
/// the card, the person declining) ends as one, never as a stack trace.
/// </summary>
public sealed class WalletException : Exception
{
    /// <summary>Creates the error.</summary>
    /// <param name="code">Stable code, e.g. <c>bill.signature.invalid</c>, <c>operator.refused:bill.expired</c>, <c>card.refused:9403</c>.</param>
    /// <param name="message">What happened, for the person.</param>
    /// <param name="cardDebited">Whether the card had already paid when this happened.</param>
    /// <param name="settlementId">The operator's settlement, once there is one.</param>
    /// <param name="innerException">The cause, if any.</param>
    public WalletException(string code, string message, bool cardDebited = false, Guid? settlementId = null, Exception? innerException = null)
        : base(message, innerException)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
        CardDebited = cardDebited;
        SettlementId = settlementId;
    }

    /// <summary>Creates the error with a generic code (for serializers and analyzers; prefer the full constructor).</summary>
    public WalletException()
        : this(WalletErrors.Unexpected, "The wallet stopped.")
    {
    }

    /// <summary>Creates the error with a generic code (prefer the full constructor).</summary>
    public WalletException(string message)
        : this(WalletErrors.Unexpected, message)
    {
    }

    /// <summary>Creates the error with a generic code (prefer the full constructor).</summary>
    public WalletException(string message, Exception innerException)
        : this(WalletErrors.Unexpected, message, innerException: innerException)
    {
    }

    /// <summary>Stable code naming the failure; see <see cref="WalletErrors"/>.</summary>
    public string Code { get; }

    /// <summary>
    /// True when the card had already paid (its DEBIT answered 9000) before the failure: the
    /// operator holds the card's completion notice and settles or reverses it; the person should
    /// keep <see cref="SettlementId"/>.
    /// </summary>
    public bool CardDebited { get; }

    /// <summary>The operator's settlement id, when round trip 1 had given one.</summary>
    public Guid? SettlementId { get; }

    /// <summary>
    /// How long the party asked to be left alone before the request is sent again (a 503's
    /// Retry-After, e.g. an operator whose database is failing over), when it said.
    /// </summary>
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>The codes of <see cref="WalletException"/>. Codes with a colon carry the other party's code after it.</summary>
internal static class WalletErrors
{
    public const string Unexpected = "wallet.unexpected";
    public const string Declined = "purchase.declined";
    public const string InvalidRequest = "purchase.invalid_request";

    public const string StoreUnreachable = "store.unreachable";
    public const string StoreRefused = "store.refused";
    public const string StoreMalformed = "store.malformed";
    public const string ItemUnknown = "catalog.item_unknown";
    public const string ItemAmbiguous = "catalog.item_ambiguous";
    public const string EstimateMismatch = "estimate.mismatch";

    public const string BillMismatch = "bill.mismatch";
    public const string BillExpired = "bill.expired";

    public const string OperatorUnreachable = "operator.unreachable";
    public const string OperatorRefused = "operator.refused";
    public const string OperatorUnavailable = "operator.unavailable";
    public const string OperatorMalformed = "operator.malformed";
    public const string KeysUnavailable = "keys.unavailable";

    public const string SettlementInfoMissing = "settlement_info.missing";
    public const string SettlementInfoMismatch = "settlement_info.mismatch";
    public const string CompletionNoticeMismatch = "acn.mismatch";
    public const string ReceiptMismatch = "receipt.mismatch";
    public const string ValueUpdateMismatch = "value_update.mismatch";

    public const string CreditCardNumberInvalid = "credit_card.number_invalid";
    public const string CreditCardExpiryInvalid = "credit_card.expiry_invalid";
    public const string CreditCardExpired = "credit_card.expired";
    public const string CreditCardPinInvalid = "credit_card.pin_invalid";
    public const string CreditCardMissing = "credit_card.missing";
    public const string AuthorizerKeysInvalid = "authorizer_keys.invalid";
    public const string TopUpMismatch = "topup.mismatch";
    public const string TopUpNotConfirmed = "topup.not_confirmed";
    public const string PayeeInvalid = "payee.invalid";
    public const string IbanInvalid = "iban.invalid";
    public const string ValueDecreaseMismatch = "value_decrease.mismatch";
    public const string DecreaseNotConfirmed = "decrease.not_confirmed";

    public const string ReaderUnavailable = "reader.unavailable";

    public const string CardNotFound = "card.not_found";
    public const string CardUnreadable = "card.unreadable";
    public const string CardRemoved = "card.removed";
    public const string CardRefused = "card.refused";
    public const string CardMalformed = "card.malformed";
    public const string CardInsufficientValue = "card.insufficient_value";

    public const string DeliveryFailed = "delivery.failed";

    /// <summary>The code for a refused signature on one message: its name, then the verifier's reason.</summary>
    /// <param name="message">bill, settlement_info, acn or receipt.</param>
    /// <param name="verifyError">What <c>SignedMessage.Verify</c> said, e.g. <c>signature.invalid</c>.</param>
    public static string Signature(string message, string verifyError) => message + "." + verifyError;

    /// <summary>A code with the other party's code after a colon, e.g. <c>operator.refused:bill.expired</c>.</summary>
    public static string With(string code, string detail) => code + ":" + detail;
}
