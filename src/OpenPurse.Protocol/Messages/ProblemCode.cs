namespace OpenPurse.Protocol.Messages;

/// <summary>
/// A stable error code of the HTTP APIs, with the status it is answered with and its fixed title:
/// the one vocabulary of refusals, shared by the operator, the store, the credit authorizer and the programs that read
/// their answers. A refusal is answered as RFC 9457 problem details whose <c>type</c> is
/// <see cref="TypePrefix"/> and the code, and whose extension member <c>code</c> is the code.
/// Every code is documented in docs/errors.md.
/// </summary>
public sealed class ProblemCode
{
    /// <summary>Problem <c>type</c> URIs: this prefix, then the code.</summary>
    public const string TypePrefix = "https://openpurse.org/problems/";

    private ProblemCode(string code, int status, string title) => (Code, Status, Title) = (code, status, title);

    /// <summary>The code programs branch on, e.g. <c>bill.expired</c>.</summary>
    public string Code { get; }

    /// <summary>The HTTP status the code is answered with.</summary>
    public int Status { get; }

    /// <summary>A short, fixed summary of the kind of refusal; the problem's <c>detail</c> says what exactly was wrong.</summary>
    public string Title { get; }

    /// <summary>The problem's <c>type</c> URI.</summary>
    public string Type => TypePrefix + Code;

    // What the framework answers by itself on both servers: a route, a method, a body or a client it refuses, or a fault.

    /// <summary>The body is not the expected JSON, or the path holds a control character.</summary>
    public static ProblemCode RequestMalformed { get; } = new("request.malformed", 400, "The request is not well-formed.");

    /// <summary>No such route.</summary>
    public static ProblemCode RequestNotFound { get; } = new("request.not_found", 404, "No such resource.");

    /// <summary>The route does not answer this method.</summary>
    public static ProblemCode RequestMethodNotAllowed { get; } = new("request.method_not_allowed", 405, "The resource does not answer this method.");

    /// <summary>The body came too slowly.</summary>
    public static ProblemCode RequestTimeout { get; } = new("request.timeout", 408, "The request's body came too slowly.");

    /// <summary>The body is larger than its endpoint reads.</summary>
    public static ProblemCode RequestTooLarge { get; } = new("request.too_large", 413, "The request's body is larger than this endpoint reads.");

    /// <summary>The request target is too long.</summary>
    public static ProblemCode RequestTargetTooLong { get; } = new("request.target_too_long", 414, "The request's target (path and query) is too long.");

    /// <summary>The body is not of a media type (or charset) the endpoint reads.</summary>
    public static ProblemCode RequestUnsupportedMediaType { get; } = new("request.unsupported_media_type", 415, "The body is not of a media type this endpoint reads.");

    /// <summary>The client made more requests than its rate allows.</summary>
    public static ProblemCode RequestRateLimited { get; } = new("request.rate_limited", 429, "Too many requests from this client; try again later.");

    /// <summary>Too many or too large header fields.</summary>
    public static ProblemCode RequestHeadersTooLarge { get; } = new("request.headers_too_large", 431, "The request's headers are too large or too many.");

    /// <summary>A fault; nothing was committed.</summary>
    public static ProblemCode InternalError { get; } = new("internal.error", 500, "Something went wrong on the server.");

    // The operator's refusals.

    /// <summary>The bill is not a well-formed BILL+SIG1.</summary>
    public static ProblemCode BillMalformed { get; } = new("bill.malformed", 400, "The bill is not well-formed.");

    /// <summary>SIG1 does not verify.</summary>
    public static ProblemCode BillSignatureInvalid { get; } = new("bill.signature_invalid", 422, "The bill's signature (SIG1) does not verify.");

    /// <summary>No registered store has the bill's key.</summary>
    public static ProblemCode BillUnknownStore { get; } = new("bill.unknown_store", 422, "The bill names a store or key the operator does not know.");

    /// <summary>The bill has expired.</summary>
    public static ProblemCode BillExpired { get; } = new("bill.expired", 422, "The bill has expired.");

    /// <summary>The bill is dated in the future or valid for too long.</summary>
    public static ProblemCode BillNotYetValid { get; } = new("bill.not_yet_valid", 422, "The bill is dated in the future.");

    /// <summary>The bill or its order number was presented before.</summary>
    public static ProblemCode BillReplayed { get; } = new("bill.replayed", 409, "The bill or its order number was used before.");

    /// <summary>The card's INITIALIZE UPDATE answer is not well-formed.</summary>
    public static ProblemCode CardGreetingMalformed { get; } = new("card.greeting_malformed", 400, "The card's answer is not well-formed.");

    /// <summary>The card is not registered.</summary>
    public static ProblemCode CardUnknown { get; } = new("card.unknown", 422, "The card is not registered.");

    /// <summary>The card is blocked.</summary>
    public static ProblemCode CardBlocked { get; } = new("card.blocked", 403, "The card is blocked.");

    /// <summary>The card's cryptogram or balance readout does not verify.</summary>
    public static ProblemCode CardAuthenticationFailed { get; } = new("card.authentication_failed", 422, "The card could not be authenticated.");

    /// <summary>The card holds less than the bill.</summary>
    public static ProblemCode CardInsufficientFunds { get; } = new("card.insufficient_funds", 422, "The card holds less than the bill.");

    /// <summary>The card has another unfinished settlement or load.</summary>
    public static ProblemCode CardBusy { get; } = new("card.busy", 409, "The card is in another settlement.");

    /// <summary>A card search is not 4 to 8 trailing digits of a card number.</summary>
    public static ProblemCode CardQueryInvalid { get; } = new("card.query_invalid", 400, "A card is found by 4 to 8 of its last digits.");

    /// <summary>An unblock of a card that is not blocked.</summary>
    public static ProblemCode CardNotBlocked { get; } = new("card.not_blocked", 409, "The card is not blocked.");

    /// <summary>A card holder's name or contact is not what the registry keeps.</summary>
    public static ProblemCode CardHolderInvalid { get; } = new("card.holder_invalid", 400, "A holder is a name and one contact, an e-mail address or a phone number.");

    /// <summary>No card holder of that id, or one erased.</summary>
    public static ProblemCode CardHolderUnknown { get; } = new("card.holder_unknown", 404, "No such card holder.");

    /// <summary>The card was replaced by another: it is blocked for good.</summary>
    public static ProblemCode CardReplaced { get; } = new("card.replaced", 409, "The card was replaced.");

    /// <summary>The operator owes the card value: sync it first.</summary>
    public static ProblemCode CardSyncRequired { get; } = new("card.sync_required", 409, "The card must be synchronized first.");

    /// <summary>The wallet reports that the card refused the debit.</summary>
    public static ProblemCode CardRefused { get; } = new("card.refused", 422, "The card refused the debit.");

    /// <summary>The card's completion notice does not verify.</summary>
    public static ProblemCode CardAnswerInvalid { get; } = new("card.answer_invalid", 422, "The card's completion notice does not verify.");

    /// <summary>No such settlement.</summary>
    public static ProblemCode SettlementNotFound { get; } = new("settlement.not_found", 404, "No such settlement.");

    /// <summary>Reading a settlement needs the store's or the wallet's proof.</summary>
    public static ProblemCode SettlementProofRequired { get; } = new("settlement.proof_required", 401, "Only the settlement's store or wallet may read it.");

    /// <summary>The settlement was completed with another answer.</summary>
    public static ProblemCode SettlementReplayed { get; } = new("settlement.replayed", 409, "The settlement was completed with another answer.");

    /// <summary>The settlement was voided.</summary>
    public static ProblemCode SettlementVoided { get; } = new("settlement.voided", 409, "The settlement was voided.");

    /// <summary>An admin decision on a settlement that is not disputed.</summary>
    public static ProblemCode SettlementNotDisputed { get; } = new("settlement.not_disputed", 409, "The settlement is not disputed: there is nothing to decide.");

    /// <summary>The card's answer came after the settlement's deadline.</summary>
    public static ProblemCode SettlementExpired { get; } = new("settlement.expired", 409, "The card's answer came after the settlement's deadline.");

    /// <summary>No such CREDIT.</summary>
    public static ProblemCode CreditNotFound { get; } = new("credit.not_found", 404, "No such credit.");

    /// <summary>The credit card's issuer declined the charge.</summary>
    public static ProblemCode TopUpDeclined { get; } = new("topup.declined", 402, "The credit card's issuer declined the charge.");

    /// <summary>The credit card's PIN is not the right one.</summary>
    public static ProblemCode TopUpPinIncorrect { get; } = new("topup.pin_incorrect", 402, "The credit card's PIN is incorrect.");

    /// <summary>The charge is above what the credit card may still be charged.</summary>
    public static ProblemCode TopUpCardLimit { get; } = new("topup.card_limit", 402, "The charge is above the credit card's limit.");

    /// <summary>Above the per-top-up maximum, the card's daily top-up maximum, or the e-purse card's maximum balance.</summary>
    public static ProblemCode TopUpLimitExceeded { get; } = new("topup.limit_exceeded", 422, "The top-up is above a limit.");

    /// <summary>The top-up id was used before with another request.</summary>
    public static ProblemCode TopUpConflict { get; } = new("topup.conflict", 409, "The top-up id was used before with another request.");

    /// <summary>
    /// The top-up waited for its authorization longer than the operator allows and was abandoned:
    /// whatever the authorizer approved for it is voided, nothing is charged or credited.
    /// </summary>
    public static ProblemCode TopUpAbandoned { get; } = new("topup.abandoned", 409, "The top-up waited too long for its authorization and was abandoned.");

    /// <summary>No credit authorizer is configured, or it does not give its keys.</summary>
    public static ProblemCode TopUpUnavailable { get; } = new("topup.unavailable", 503, "Top-ups are not available.");

    /// <summary>No such top-up.</summary>
    public static ProblemCode TopUpNotFound { get; } = new("topup.not_found", 404, "No such top-up.");

    /// <summary>Reading a top-up needs the wallet's proof (<see cref="TopUpReadProof"/>).</summary>
    public static ProblemCode TopUpProofRequired { get; } = new("topup.proof_required", 401, "Only the top-up's wallet may read it.");

    /// <summary>The refund request is not a compact JWS with a key id, or its content is not a refund request.</summary>
    public static ProblemCode RefundMalformed { get; } = new("refund.malformed", 400, "The refund request is not well-formed.");

    /// <summary>The refund request is not signed by a registered key of the store it names.</summary>
    public static ProblemCode RefundSignatureInvalid { get; } = new("refund.signature_invalid", 422, "The refund request's signature does not verify.");

    /// <summary>The refund request is too old, or dated in the future.</summary>
    public static ProblemCode RefundStale { get; } = new("refund.stale", 422, "The refund request is too old or dated in the future.");

    /// <summary>The refund id was used before with another request.</summary>
    public static ProblemCode RefundConflict { get; } = new("refund.conflict", 409, "The refund id was used before with another request.");

    /// <summary>The settlement (or order) is not paid: there is nothing to refund.</summary>
    public static ProblemCode RefundNotPaid { get; } = new("refund.not_paid", 409, "The payment is not completed: there is nothing to refund.");

    /// <summary>The amount is not positive, or not in the payment's currency.</summary>
    public static ProblemCode RefundAmountInvalid { get; } = new("refund.amount_invalid", 422, "The refund's amount is not acceptable.");

    /// <summary>With the earlier refunds, more than was paid.</summary>
    public static ProblemCode RefundExceedsPaid { get; } = new("refund.exceeds_paid", 422, "The refunds would exceed what was paid.");

    /// <summary>The card that paid is blocked: a refund could never reach it.</summary>
    public static ProblemCode RefundCardBlocked { get; } = new("refund.card_blocked", 409, "The card that paid is blocked.");

    /// <summary>No such refund, or none that the given proof is for.</summary>
    public static ProblemCode RefundNotFound { get; } = new("refund.not_found", 404, "No such refund.");

    /// <summary>Reading a refund needs its store's signed query.</summary>
    public static ProblemCode RefundProofRequired { get; } = new("refund.proof_required", 401, "Only the refund's store may read it.");

    /// <summary>The transfer id was used before with another request.</summary>
    public static ProblemCode TransferConflict { get; } = new("transfer.conflict", 409, "The transfer id was used before with another request.");

    /// <summary>No such transfer.</summary>
    public static ProblemCode TransferNotFound { get; } = new("transfer.not_found", 404, "No such transfer.");

    /// <summary>The payee card is unknown, blocked, or the paying card itself.</summary>
    public static ProblemCode TransferPayeeInvalid { get; } = new("transfer.payee_invalid", 422, "The payee card cannot receive a transfer.");

    /// <summary>The cash-out id was used before with another request.</summary>
    public static ProblemCode CashOutConflict { get; } = new("cashout.conflict", 409, "The cash-out id was used before with another request.");

    /// <summary>No such cash-out.</summary>
    public static ProblemCode CashOutNotFound { get; } = new("cashout.not_found", 404, "No such cash-out.");

    /// <summary>A cash-out without the name of the bank account's holder, or with one that is too long or has control characters.</summary>
    public static ProblemCode CashOutHolderInvalid { get; } = new("cashout.holder_invalid", 422, "The account holder's name is missing or not valid.");

    /// <summary>Not an IBAN: its form, its country, its length for the country, or its check digits.</summary>
    public static ProblemCode IbanInvalid { get; } = new("iban.invalid", 422, "The IBAN is not valid.");

    /// <summary>An admin decision on a payout that is not waiting for clearing (paid or returned before, or never debited).</summary>
    public static ProblemCode PayoutNotPending { get; } = new("payout.not_pending", 409, "The payout is not waiting for clearing.");

    /// <summary>A clearing period or run end that is not a day (yyyy-MM-dd, UTC), a period that ends before it starts or is too long, or a run's end in the future.</summary>
    public static ProblemCode ClearingPeriodInvalid { get; } = new("clearing.period_invalid", 400, "The clearing period is not valid.");

    /// <summary>A store's fee out of bounds: basis points outside 0 to 10000, or a fixed fee below zero or too large.</summary>
    public static ProblemCode ClearingFeeInvalid { get; } = new("clearing.fee_invalid", 422, "The fee is out of bounds.");

    /// <summary>A clearing run asked for an end before the last run's end.</summary>
    public static ProblemCode ClearingRunEarlier { get; } = new("clearing.run_earlier", 409, "A clearing run ends no earlier than the last one.");

    /// <summary>A store's bank account without the holder's name, or with one that is too long or has control characters.</summary>
    public static ProblemCode ClearingHolderInvalid { get; } = new("clearing.holder_invalid", 422, "The account holder's name is missing or not valid.");

    /// <summary>No payout of that run for that store.</summary>
    public static ProblemCode ClearingPayoutNotFound { get; } = new("clearing.payout_not_found", 404, "No such store payout.");

    /// <summary>A store payout marked paid that is not due (paid before, or nothing to pay).</summary>
    public static ProblemCode ClearingPayoutNotDue { get; } = new("clearing.payout_not_due", 409, "The store payout is not due.");

    /// <summary>SIG4 does not verify or the receipt does not match.</summary>
    public static ProblemCode ReceiptInvalid { get; } = new("receipt.invalid", 422, "The receipt (SIG4) does not verify or does not match.");

    /// <summary>No such store in the registry.</summary>
    public static ProblemCode StoreNotFound { get; } = new("store.not_found", 404, "No such store.");

    /// <summary>A store registration with a bad id or keys.</summary>
    public static ProblemCode StoreInvalid { get; } = new("store.invalid", 400, "The store registration is not valid.");

    /// <summary>The message is signed under a store key an administrator retired, or a registration carries a retired key id.</summary>
    public static ProblemCode StoreKeyRetired { get; } = new("store.key_retired", 422, "The store's key was retired.");

    /// <summary>The store has no such key id.</summary>
    public static ProblemCode StoreKeyNotFound { get; } = new("store.key_not_found", 404, "The store has no such key.");

    /// <summary>Retiring the store's last active key would leave it unable to sign.</summary>
    public static ProblemCode StoreKeyLast { get; } = new("store.key_last", 409, "A store keeps at least one active key.");

    /// <summary>No operator signing key with that key id.</summary>
    public static ProblemCode OperatorKeyNotFound { get; } = new("operator_key.not_found", 404, "No such operator key.");

    /// <summary>The operator key's state does not allow the change (activating a retired key, retiring the active one).</summary>
    public static ProblemCode OperatorKeyWrongState { get; } = new("operator_key.wrong_state", 409, "The operator key's state does not allow this.");

    /// <summary>The node's key vault does not hold the private half of the key to activate.</summary>
    public static ProblemCode OperatorKeyNotInVault { get; } = new("operator_key.not_in_vault", 409, "The key vault does not hold that operator key.");

    /// <summary>The admin API needs an admin token.</summary>
    public static ProblemCode AdminUnauthorized { get; } = new("admin.unauthorized", 401, "An admin token is required.");

    /// <summary>The admin token's role does not allow the action.</summary>
    public static ProblemCode AdminForbidden { get; } = new("admin.forbidden", 403, "The admin token's role does not allow this.");

    /// <summary>The operator node is at capacity; nothing was committed.</summary>
    public static ProblemCode OperatorBusy { get; } = new("operator.busy", 503, "The operator is at capacity.");

    // The store's (and mall's) refusals.

    /// <summary>No such member store.</summary>
    public static ProblemCode OrderUnknownStore { get; } = new("order.unknown_store", 422, "No such store.");

    /// <summary>Not 1 to 20 lines.</summary>
    public static ProblemCode OrderInvalidItems { get; } = new("order.invalid_items", 422, "The order's items are not acceptable.");

    /// <summary>A quantity out of range.</summary>
    public static ProblemCode OrderInvalidQuantity { get; } = new("order.invalid_quantity", 422, "A quantity is out of range.");

    /// <summary>One article on two lines.</summary>
    public static ProblemCode OrderDuplicateItem { get; } = new("order.duplicate_item", 422, "An item is listed twice.");

    /// <summary>An article the store does not sell.</summary>
    public static ProblemCode OrderUnknownItem { get; } = new("order.unknown_item", 422, "No such item.");

    /// <summary>No such order.</summary>
    public static ProblemCode OrderNotFound { get; } = new("order.not_found", 404, "No such order.");

    /// <summary>The ACN's SIG3 does not verify.</summary>
    public static ProblemCode CompletionSignatureInvalid { get; } = new("completion.signature_invalid", 422, "The completion notice's signature (SIG3) does not verify.");

    /// <summary>The ACN does not match the order.</summary>
    public static ProblemCode CompletionMismatch { get; } = new("completion.mismatch", 422, "The completion notice does not match the order.");

    /// <summary>The ACN conflicts with a recorded payment or void.</summary>
    public static ProblemCode CompletionConflict { get; } = new("completion.conflict", 409, "One order, one outcome: this notice conflicts with a recorded payment or void.");

    /// <summary>The void notice's signature does not verify.</summary>
    public static ProblemCode VoidSignatureInvalid { get; } = new("void.signature_invalid", 422, "The void notice's signature does not verify.");

    /// <summary>The void notice does not match the order.</summary>
    public static ProblemCode VoidMismatch { get; } = new("void.mismatch", 422, "The void notice does not match the order.");

    /// <summary>The void notice is for a paid order.</summary>
    public static ProblemCode VoidConflict { get; } = new("void.conflict", 409, "The order is paid: its payment stands and it cannot be voided.");

    /// <summary>The operator refused a refund the store asked for; the detail names the operator's code.</summary>
    public static ProblemCode RefundRefused { get; } = new("refund.refused", 422, "The operator refused the refund.");

    /// <summary>The operator could not be reached about a refund; the same refund may be asked again.</summary>
    public static ProblemCode RefundOperatorUnreachable { get; } = new("refund.operator_unreachable", 503, "The operator could not be reached; ask for the same refund again.");

    /// <summary>The operator's keys could not be fetched to check a notice.</summary>
    public static ProblemCode OperatorUnavailable { get; } = new("operator.unavailable", 503, "The operator's keys could not be fetched.");

    /// <summary>A statement read without the operator's valid signed query.</summary>
    public static ProblemCode StatementQueryInvalid { get; } = new("statement.query_invalid", 401, "Only the operator may read a store's statement.");

    /// <summary>A download without a paid order's receipt.</summary>
    public static ProblemCode DownloadNotPaid { get; } = new("download.not_paid", 403, "The goods are delivered only for a completed payment.");

    /// <summary>An article of the order is no longer delivered.</summary>
    public static ProblemCode DownloadItemUnavailable { get; } = new("download.item_unavailable", 410, "An item of the order is no longer in the catalog.");

    // The credit authorizer's refusals (docs/authorizer.md).

    /// <summary>A call to the authorizer without one of its configured API keys.</summary>
    public static ProblemCode AuthorizerUnauthorized { get; } = new("authorizer.unauthorized", 401, "An API key of the authorizer is required.");

    /// <summary>The authorizer is briefly unable to answer; the same request may be sent again.</summary>
    public static ProblemCode AuthorizerUnavailable { get; } = new("authorizer.unavailable", 503, "The authorizer cannot answer now; send the same request again.");

    /// <summary>An authorization request without a usable <c>Idempotency-Key</c> header.</summary>
    public static ProblemCode IdempotencyKeyRequired { get; } = new("idempotency.key_required", 400, "An Idempotency-Key header of 1 to 255 visible characters is required.");

    /// <summary>The idempotency key was used before with another request.</summary>
    public static ProblemCode IdempotencyConflict { get; } = new("idempotency.conflict", 409, "The Idempotency-Key was used before with another request.");

    /// <summary>The encrypted card data does not decrypt for the authorizer, or is not card data.</summary>
    public static ProblemCode CardDataInvalid { get; } = new("card_data.invalid", 422, "The encrypted card data cannot be read.");

    /// <summary>The card number fails the Luhn check.</summary>
    public static ProblemCode CardNumberInvalid { get; } = new("card_data.number_invalid", 422, "The card number is not valid.");

    /// <summary>The card's expiry date has passed.</summary>
    public static ProblemCode CardExpired { get; } = new("card_data.expired", 422, "The card has expired.");

    /// <summary>An amount that is not above zero, or not money.</summary>
    public static ProblemCode AuthorizationAmountInvalid { get; } = new("authorization.amount_invalid", 422, "The amount cannot be authorized.");

    /// <summary>No such authorization.</summary>
    public static ProblemCode AuthorizationNotFound { get; } = new("authorization.not_found", 404, "No such authorization.");

    /// <summary>A capture or void of a declined authorization.</summary>
    public static ProblemCode AuthorizationDeclined { get; } = new("authorization.declined", 409, "The authorization was declined: there is nothing to capture or void.");

    /// <summary>A capture of a voided authorization.</summary>
    public static ProblemCode AuthorizationVoided { get; } = new("authorization.voided", 409, "The authorization was voided.");

    /// <summary>A void of a captured authorization, or a capture of another amount than the one captured.</summary>
    public static ProblemCode AuthorizationCaptured { get; } = new("authorization.captured", 409, "The authorization was captured.");

    /// <summary>A capture after the authorization expired.</summary>
    public static ProblemCode AuthorizationExpired { get; } = new("authorization.expired", 409, "The authorization has expired.");

    /// <summary>A capture of more than was authorized, or in another currency.</summary>
    public static ProblemCode CaptureExceedsAuthorization { get; } = new("capture.exceeds_authorization", 422, "The capture is more than the authorization.");

    // The wallet agent's refusals (openpurse agent): its loopback API's guards and its approvals.

    /// <summary>The request's Host is not the agent's own loopback address (DNS rebinding).</summary>
    public static ProblemCode AgentHostRefused { get; } = new("agent.host_refused", 400, "The request is not addressed to the agent by its loopback name.");

    /// <summary>The request's Origin is missing or not one the agent was told to allow.</summary>
    public static ProblemCode AgentOriginRefused { get; } = new("agent.origin_refused", 403, "The request's origin may not use the agent.");

    /// <summary>The API request lacks the header that forces a CORS preflight.</summary>
    public static ProblemCode AgentHeaderRequired { get; } = new("agent.header_required", 403, "The request lacks the agent's request header.");

    /// <summary>The bill is not signed by its store as the operator registered it, cannot be read, or does not add up.</summary>
    public static ProblemCode AgentBillInvalid { get; } = new("agent.bill_invalid", 422, "The bill is not a valid signed bill of its store.");

    /// <summary>The bill has expired.</summary>
    public static ProblemCode AgentBillExpired { get; } = new("agent.bill_expired", 422, "The bill has expired.");

    /// <summary>The operator could not be asked for the keys that check the bill.</summary>
    public static ProblemCode AgentOperatorUnreachable { get; } = new("agent.operator_unreachable", 503, "The agent cannot reach the operator.");

    /// <summary>As many payments and top-ups are open as the agent keeps.</summary>
    public static ProblemCode AgentTooMany { get; } = new("agent.too_many", 429, "Too many payments and top-ups are open; finish one first.");

    /// <summary>No such payment for this origin.</summary>
    public static ProblemCode AgentPaymentUnknown { get; } = new("agent.payment_unknown", 404, "No such payment.");

    /// <summary>No such top-up for this origin.</summary>
    public static ProblemCode AgentTopUpUnknown { get; } = new("agent.topup_unknown", 404, "No such top-up.");

    /// <summary>An approval posted from another origin than the agent's own, or without its token.</summary>
    public static ProblemCode AgentApprovalRefused { get; } = new("agent.approval_refused", 403, "The approval did not come from the agent's own page.");

    /// <summary>An approval posted for a payment or top-up that is not waiting for one.</summary>
    public static ProblemCode AgentApprovalState { get; } = new("agent.approval_state", 409, "The payment or top-up is not waiting for an approval.");

    /// <summary>What the framework answers by itself, on both servers.</summary>
    public static IReadOnlyList<ProblemCode> Framework { get; } =
    [
        RequestMalformed, RequestNotFound, RequestMethodNotAllowed, RequestTimeout, RequestTooLarge, RequestTargetTooLong,
        RequestUnsupportedMediaType, RequestRateLimited, RequestHeadersTooLarge, InternalError,
    ];

    /// <summary>Every code the operator answers: the framework's and its own refusals.</summary>
    public static IReadOnlyList<ProblemCode> Operator { get; } =
    [
        .. Framework,
        BillMalformed, BillSignatureInvalid, BillUnknownStore, BillExpired, BillNotYetValid, BillReplayed,
        CardGreetingMalformed, CardUnknown, CardBlocked, CardAuthenticationFailed, CardInsufficientFunds, CardBusy,
        CardSyncRequired, CardRefused, CardAnswerInvalid, CardQueryInvalid, CardNotBlocked, CardHolderInvalid, CardHolderUnknown, CardReplaced,
        SettlementNotFound, SettlementProofRequired, SettlementReplayed, SettlementVoided, SettlementNotDisputed, SettlementExpired,
        CreditNotFound, ReceiptInvalid, StoreNotFound, StoreInvalid, AdminUnauthorized, AdminForbidden, OperatorBusy,
        StoreKeyRetired, StoreKeyNotFound, StoreKeyLast, OperatorKeyNotFound, OperatorKeyWrongState, OperatorKeyNotInVault,
        TopUpDeclined, TopUpPinIncorrect, TopUpCardLimit, TopUpLimitExceeded, TopUpConflict, TopUpAbandoned, TopUpUnavailable, TopUpNotFound, TopUpProofRequired,
        AuthorizerUnavailable, CardDataInvalid, CardNumberInvalid, CardExpired,
        RefundMalformed, RefundSignatureInvalid, RefundStale, RefundConflict, RefundNotPaid, RefundAmountInvalid, RefundExceedsPaid,
        RefundCardBlocked, RefundNotFound, RefundProofRequired,
        TransferConflict, TransferNotFound, TransferPayeeInvalid, CashOutConflict, CashOutNotFound, CashOutHolderInvalid, IbanInvalid, PayoutNotPending,
        ClearingPeriodInvalid, ClearingFeeInvalid, ClearingRunEarlier, ClearingHolderInvalid, ClearingPayoutNotFound, ClearingPayoutNotDue,
    ];

    /// <summary>Every code the store (or mall) answers: the framework's and its own refusals.</summary>
    public static IReadOnlyList<ProblemCode> Store { get; } =
    [
        .. Framework,
        OrderUnknownStore, OrderInvalidItems, OrderInvalidQuantity, OrderDuplicateItem, OrderUnknownItem, OrderNotFound,
        CompletionSignatureInvalid, CompletionMismatch, CompletionConflict, VoidSignatureInvalid, VoidMismatch, VoidConflict,
        OperatorUnavailable, StatementQueryInvalid, DownloadNotPaid, DownloadItemUnavailable,
        AdminUnauthorized, RefundNotPaid, RefundAmountInvalid, RefundExceedsPaid, RefundRefused, RefundOperatorUnreachable,
    ];

    /// <summary>Every code the credit authorizer answers: the framework's and its own refusals.</summary>
    public static IReadOnlyList<ProblemCode> Authorizer { get; } =
    [
        .. Framework,
        AuthorizerUnauthorized, AuthorizerUnavailable, IdempotencyKeyRequired, IdempotencyConflict,
        CardDataInvalid, CardNumberInvalid, CardExpired, AuthorizationAmountInvalid, AuthorizationNotFound,
        AuthorizationDeclined, AuthorizationVoided, AuthorizationCaptured, AuthorizationExpired, CaptureExceedsAuthorization,
    ];

    /// <summary>Every code the wallet agent answers: the framework's and its own refusals.</summary>
    public static IReadOnlyList<ProblemCode> Agent { get; } =
    [
        .. Framework,
        AgentHostRefused, AgentOriginRefused, AgentHeaderRequired, AgentBillInvalid, AgentBillExpired, AgentOperatorUnreachable,
        AgentTooMany, AgentPaymentUnknown, AgentTopUpUnknown, AgentApprovalRefused, AgentApprovalState,
    ];

    /// <summary>Every code, once.</summary>
    public static IReadOnlyList<ProblemCode> All { get; } = [.. Operator.Concat(Store).Concat(Authorizer).Concat(Agent).Distinct()];

    /// <summary>The code named <paramref name="code"/>, or null when there is none (a program reading another party's answer).</summary>
    public static ProblemCode? Find(string? code) => All.FirstOrDefault(problem => string.Equals(problem.Code, code, StringComparison.Ordinal));

    /// <inheritdoc/>
    public override string ToString() => Code;
}
