using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Decreases;
using OpenPurse.Operator.Refunds;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Operator.TopUps;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The application server 30: the public HTTP API for wallets and stores, on the public listener.
/// Every endpoint here is open to anyone and says so (<c>AllowAnonymous</c>): what protects it is the
/// signatures and MACs of its messages. The admin API is <see cref="AdminApi"/>.
/// </summary>
internal static class OperatorApi
{
    /// <summary>A body carrying one signed message (a bill, a receipt) and a few short members.</summary>
    public const long SignedBodyLengthMax = Jws.CompactLengthMax + (4 * 1024);

    /// <summary>A body carrying a card's answer or greeting: a few hundred bytes of base64.</summary>
    public const long CardBodyLengthMax = 4 * 1024;

    /// <summary>A store registration: names, a URL and a key set of a few keys.</summary>
    public const long RegistrationBodyLengthMax = 32 * 1024;

    private const string JwkSetMediaType = "application/jwk-set+json";

    public static IEndpointRouteBuilder MapOperatorApi(this IEndpointRouteBuilder app)
    {
        // For a load balancer: the node is up (see GetHealth for why not its registry).
        app.MapGet("/health", GetHealth).AllowAnonymous()
            .WithName("GetHealth").WithSummary("The node is up and serving.")
            .Produces<string>(StatusCodes.Status200OK, "text/plain");

        app.MapGet("/.well-known/jwks.json", GetOperatorKeysAsync).RequireClientRateLimit().AllowAnonymous()
            .WithName("GetOperatorKeys").WithSummary("The operator's public keys (SIG2, SIG3, SIG5 and void notices): the next, active and previous signing keys, a JWK set.")
            .Produces(StatusCodes.Status200OK, contentType: JwkSetMediaType).Refuses(ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        app.MapGet("/v1/stores/{storeId}/jwks", GetStoreKeysAsync).RequireClientRateLimit().AllowAnonymous()
            .WithName("GetStoreKeys").WithSummary("A registered store's public keys (SIG1, SIG4), a JWK set.")
            .Produces(StatusCodes.Status200OK, contentType: JwkSetMediaType)
            .Refuses(ProblemCode.StoreNotFound, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        // Each client address within its rate first, then every request in admission control's turn.
        var settlements = app.MapGroup("/v1/settlements").RequireClientRateLimit().RequireRateLimiting(Admission.Policy);
        settlements.MapPost("/", StartSettlementAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("StartSettlement").WithSummary("Round trip 1: a signed bill and the card's greeting; the card's commands to run.")
            .Refuses(
                ProblemCode.BillMalformed, ProblemCode.BillUnknownStore, ProblemCode.BillSignatureInvalid, ProblemCode.BillExpired, ProblemCode.BillNotYetValid,
                ProblemCode.BillReplayed, ProblemCode.CardGreetingMalformed, ProblemCode.CardUnknown, ProblemCode.CardBlocked, ProblemCode.CardAuthenticationFailed,
                ProblemCode.CardInsufficientFunds, ProblemCode.CardBusy, ProblemCode.CardSyncRequired, ProblemCode.StoreKeyRetired, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        settlements.MapPost("/{id:guid}/completion", CompleteSettlementAsync).WithBodyLimit(CardBodyLengthMax).AllowAnonymous()
            .WithName("CompleteSettlement").WithSummary("Round trip 2: the card's answer to the debit; the ACN (SIG3) and the store's receipt.")
            .Refuses(
                ProblemCode.SettlementNotFound, ProblemCode.SettlementReplayed, ProblemCode.SettlementVoided, ProblemCode.SettlementExpired,
                ProblemCode.CardRefused, ProblemCode.CardAnswerInvalid, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        settlements.MapPost("/{id:guid}/receipt", DeliverReceiptAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("DeliverReceipt").WithSummary("The store's receipt (SIG4) for a completed settlement, brought by the wallet.")
            .Refuses(ProblemCode.SettlementNotFound, ProblemCode.ReceiptInvalid, ProblemCode.StoreKeyRetired, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        // Open to anyone on the listener: the proof of belonging is checked against the settlement itself.
        settlements.MapGet("/{id:guid}", GetSettlementAsync).AllowAnonymous()
            .WithName("GetSettlement").WithSummary("A settlement's state, for its store (signed query) or its wallet (DEBIT digest).")
            .Refuses(ProblemCode.SettlementProofRequired, ProblemCode.SettlementNotFound, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        var cards = app.MapGroup("/v1/cards").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        cards.MapPost("/sync", SyncCardAsync).AllowAnonymous()
            .WithName("SyncCard").WithSummary("The card online outside a purchase: what it left unfinished is resolved, and a CREDIT for what it is owed.")
            .Refuses(
                ProblemCode.CardGreetingMalformed, ProblemCode.CardUnknown, ProblemCode.CardAuthenticationFailed, ProblemCode.CardBusy,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        cards.MapPost("/credits/{id:guid}/completion", CompleteCreditAsync).AllowAnonymous()
            .WithName("CompleteCredit").WithSummary("The card's answer to a CREDIT.")
            .Refuses(ProblemCode.CreditNotFound, ProblemCode.CardRefused, ProblemCode.CardAnswerInvalid, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        // A top-up by credit card: anonymous like the card endpoints, what protects it is the card's
        // session and the authorizer's own checks of the card data, which the operator never opens.
        var topUps = app.MapGroup("/v1/topups").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        topUps.MapGet("/authorizer-keys", GetAuthorizerKeysAsync).AllowAnonymous()
            .WithName("GetAuthorizerKeys").WithSummary("The credit authorizer's keys, signed by the operator, to encrypt card data to.")
            .Refuses(ProblemCode.TopUpUnavailable, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        topUps.MapPost("/", StartTopUpAsync).AllowAnonymous()
            .WithName("StartTopUp").WithSummary("A top-up by credit card: the charge is authorized and the card gets its CREDIT with SIG5.")
            .Refuses(
                ProblemCode.TopUpDeclined, ProblemCode.TopUpPinIncorrect, ProblemCode.TopUpCardLimit, ProblemCode.TopUpLimitExceeded, ProblemCode.TopUpConflict, ProblemCode.TopUpAbandoned,
                ProblemCode.TopUpUnavailable, ProblemCode.AuthorizerUnavailable, ProblemCode.CardDataInvalid, ProblemCode.CardNumberInvalid, ProblemCode.CardExpired,
                ProblemCode.CardGreetingMalformed, ProblemCode.CardUnknown, ProblemCode.CardBlocked, ProblemCode.CardAuthenticationFailed, ProblemCode.CardBusy,
                ProblemCode.CardSyncRequired, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        topUps.MapPost("/{id:guid}/completion", CompleteTopUpAsync).AllowAnonymous()
            .WithName("CompleteTopUp").WithSummary("The card's answer to a top-up's CREDIT; the charge is captured once it proves the credit.")
            .Refuses(
                ProblemCode.TopUpNotFound, ProblemCode.TopUpConflict, ProblemCode.TopUpUnavailable, ProblemCode.CardRefused, ProblemCode.CardAnswerInvalid,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        // Open to anyone on the listener, like a settlement: the proof is checked against the top-up itself.
        topUps.MapGet("/{id:guid}", GetTopUpAsync).AllowAnonymous()
            .WithName("GetTopUp").WithSummary("A top-up's state, for its wallet (the digest of the CREDIT it was given).")
            .Refuses(ProblemCode.TopUpProofRequired, ProblemCode.TopUpNotFound, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        // A refund by a store. Open on the listener like the settlement endpoints: what authorizes it is
        // the store's signature on the request, checked against the keys the operator registered for
        // that store, and the request names the store's own settlement; a read needs the store's
        // signed query for the refund's settlement.
        var refunds = app.MapGroup("/v1/refunds").RequireClientRateLimit().RequireRateLimiting(Admission.Policy);
        refunds.MapPost("/", RefundAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("Refund").WithSummary("A store's signed refund request for a settlement it was paid; the operator's signed refund notice.")
            .Refuses(
                ProblemCode.RefundMalformed, ProblemCode.RefundSignatureInvalid, ProblemCode.RefundStale, ProblemCode.RefundConflict,
                ProblemCode.SettlementNotFound, ProblemCode.RefundNotPaid, ProblemCode.RefundAmountInvalid, ProblemCode.RefundExceedsPaid,
                ProblemCode.RefundCardBlocked, ProblemCode.StoreKeyRetired, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        refunds.MapGet("/{id:guid}", GetRefundAsync).AllowAnonymous()
            .WithName("GetRefund").WithSummary("A refund's current notice (owed, or credited once the card took it), for its store (signed query).")
            .Refuses(ProblemCode.RefundProofRequired, ProblemCode.RefundNotFound, ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        // Value the card holder takes off the card: anonymous like the card endpoints, what protects it is
        // the card's session (the DEBIT is made for it) and the person's approval the card checks.
        var transfers = app.MapGroup("/v1/transfers").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        transfers.MapPost("/", StartTransferAsync).AllowAnonymous()
            .WithName("StartTransfer").WithSummary("A transfer to another card: a DEBIT for the card's session and the value decrease information that describes it.")
            .Refuses(
                ProblemCode.TransferConflict, ProblemCode.TransferPayeeInvalid, ProblemCode.CardGreetingMalformed, ProblemCode.CardUnknown, ProblemCode.CardBlocked,
                ProblemCode.CardAuthenticationFailed, ProblemCode.CardInsufficientFunds, ProblemCode.CardBusy, ProblemCode.CardSyncRequired,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        transfers.MapPost("/{id:guid}/completion", CompleteTransferAsync).AllowAnonymous()
            .WithName("CompleteTransfer").WithSummary("The card's answer to a transfer's DEBIT; the value is owed to the payee card once it proves the debit.")
            .Refuses(
                ProblemCode.TransferNotFound, ProblemCode.TransferConflict, ProblemCode.CardRefused, ProblemCode.CardAnswerInvalid,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        var cashOuts = app.MapGroup("/v1/cashouts").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        cashOuts.MapPost("/", StartCashOutAsync).AllowAnonymous()
            .WithName("StartCashOut").WithSummary("A cash-out to a bank account: a DEBIT for the card's session and the value decrease information that describes it.")
            .Refuses(
                ProblemCode.CashOutConflict, ProblemCode.IbanInvalid, ProblemCode.CashOutHolderInvalid, ProblemCode.CardGreetingMalformed, ProblemCode.CardUnknown,
                ProblemCode.CardBlocked, ProblemCode.CardAuthenticationFailed, ProblemCode.CardInsufficientFunds, ProblemCode.CardBusy, ProblemCode.CardSyncRequired,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);
        cashOuts.MapPost("/{id:guid}/completion", CompleteCashOutAsync).AllowAnonymous()
            .WithName("CompleteCashOut").WithSummary("The card's answer to a cash-out's DEBIT; the payout is due once it proves the debit.")
            .Refuses(
                ProblemCode.CashOutNotFound, ProblemCode.CashOutConflict, ProblemCode.CardRefused, ProblemCode.CardAnswerInvalid,
                ProblemCode.RequestRateLimited, ProblemCode.OperatorBusy);

        app.MapApiDocument(ApiDocuments.Public);
        return app;
    }

    /// <summary>
    /// The OpenAPI documents: <see cref="ApiDocuments.Public"/> of the public API, on the public
    /// listener, and <see cref="AdminApi.Document"/> of the admin API, on the admin listener.
    /// </summary>
    public static IServiceCollection AddOperatorApiDocuments(this IServiceCollection services) => services
        .AddApiDocument(ApiDocuments.Public, "OpenPurse operator", metadata => !metadata.OfType<AdminSurface>().Any())
        .AddApiDocument(AdminApi.Document, "OpenPurse operator administration", metadata => metadata.OfType<AdminSurface>().Any())
        .AddBearerSecurity(AdminApi.Document, AdminAccess.Scheme,
            "An administrator's or an auditor's token (OpenPurse:Operator:AdminTokens); which role an operation needs is in its description.");

    /// <summary>A value as 200, a refusal as its problem details.</summary>
    public static Results<Ok<T>, ProblemHttpResult> Answer<T>(Result<T> result) =>
        result.Refusal is { } refusal ? refusal.ToResult() : TypedResults.Ok(result.Value);

    // The node's own liveness, what a balancer asks: not the registry's. Every node shares one
    // registry, so a registry that fails (a failover) would take every node out of the balancer
    // at once, and the clients would get the balancer's own 503 page; kept in, each node answers
    // 503 operator.busy with Retry-After, which wallets and stores understand and retry.
    private static ContentHttpResult GetHealth() => TypedResults.Text("ok");

    // The next, active and previous keys: a verifier that meets an unknown kid fetches this again.
    private static async Task<ContentHttpResult> GetOperatorKeysAsync(OperatorKeyRing keys, CancellationToken ct) =>
        TypedResults.Text((await keys.PublishedAsync(ct)).ToJson(), JwkSetMediaType);

    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> GetStoreKeysAsync(string storeId, StoreRegistry stores, CancellationToken ct) =>
        await stores.FindAsync(storeId, ct) is var (_, keys)
            ? TypedResults.Text(keys.ToJson(), JwkSetMediaType)
            : new Refusal(ProblemCode.StoreNotFound, $"No store '{storeId}'.").ToResult();

    private static async Task<Results<Created<StartSettlementResponse>, ProblemHttpResult>> StartSettlementAsync(StartSettlementRequest request, SettlementService service, CancellationToken ct)
    {
        var started = await service.StartAsync(request, ct);
        return started.Refusal is { } refusal
            ? refusal.ToResult()
            : TypedResults.Created($"/v1/settlements/{started.Value!.SettlementId}", started.Value);
    }

    private static async Task<Results<Ok<CompleteSettlementResponse>, ProblemHttpResult>> CompleteSettlementAsync(Guid id, CompleteSettlementRequest request, SettlementService service, CancellationToken ct) =>
        Answer(await service.CompleteAsync(id, request, ct));

    private static async Task<Results<NoContent, ProblemHttpResult>> DeliverReceiptAsync(Guid id, ReceiptDelivery delivery, SettlementService service, CancellationToken ct) =>
        await service.AcceptReceiptAsync(id, delivery.Receipt, ct) is { Refusal: { } refusal } ? refusal.ToResult() : TypedResults.NoContent();

    private static async Task<Results<Ok<SettlementView>, ProblemHttpResult>> GetSettlementAsync(
        Guid id,
        [FromHeader(Name = SettlementReadProof.StoreHeader)] string? storeQuery,
        [FromHeader(Name = SettlementReadProof.WalletHeader)] string? debitDigest,
        SettlementService service,
        CancellationToken ct) =>
        Answer(await service.GetAsync(id, storeQuery, debitDigest, ct));

    private static async Task<Results<Ok<CardSyncResponse>, ProblemHttpResult>> SyncCardAsync(CardSyncRequest request, CardSync sync, CancellationToken ct) =>
        Answer(await sync.SyncAsync(request, ct));

    private static async Task<Results<Ok<SettlementOutcome>, ProblemHttpResult>> CompleteCreditAsync(Guid id, CompleteSettlementRequest request, CardSync sync, CancellationToken ct) =>
        Answer(await sync.CompleteCreditAsync(id, request, ct));

    private static async Task<Results<Ok<AuthorizerKeysResponse>, ProblemHttpResult>> GetAuthorizerKeysAsync(TopUpRequests topUps, CancellationToken ct) =>
        Answer(await topUps.GetAuthorizerKeysAsync(ct));

    private static async Task<Results<Ok<TopUpResponse>, ProblemHttpResult>> StartTopUpAsync(TopUpRequest request, TopUpRequests topUps, CancellationToken ct) =>
        Answer(await topUps.StartAsync(request, ct));

    private static async Task<Results<Ok<TransferResponse>, ProblemHttpResult>> StartTransferAsync(TransferRequest request, ValueDecreaseService decreases, CancellationToken ct) =>
        Answer(await decreases.StartTransferAsync(request, ct));

    private static async Task<Results<Ok<TransferView>, ProblemHttpResult>> CompleteTransferAsync(Guid id, CompleteSettlementRequest request, ValueDecreaseService decreases, CancellationToken ct) =>
        Answer(await decreases.CompleteTransferAsync(id, request, ct));

    private static async Task<Results<Ok<CashOutResponse>, ProblemHttpResult>> StartCashOutAsync(CashOutRequest request, ValueDecreaseService decreases, CancellationToken ct) =>
        Answer(await decreases.StartCashOutAsync(request, ct));

    private static async Task<Results<Ok<CashOutView>, ProblemHttpResult>> CompleteCashOutAsync(Guid id, CompleteSettlementRequest request, ValueDecreaseService decreases, CancellationToken ct) =>
        Answer(await decreases.CompleteCashOutAsync(id, request, ct));

    private static async Task<Results<Ok<TopUpView>, ProblemHttpResult>> CompleteTopUpAsync(Guid id, CompleteSettlementRequest request, TopUpCompletion topUps, CancellationToken ct) =>
        Answer(await topUps.CompleteAsync(id, request, ct));

    private static async Task<Results<Ok<TopUpView>, ProblemHttpResult>> GetTopUpAsync(
        Guid id, [FromHeader(Name = TopUpReadProof.WalletHeader)] string? creditDigest, TopUpCompletion topUps, CancellationToken ct) =>
        Answer(await topUps.GetAsync(id, creditDigest, ct));

    private static async Task<Results<Ok<RefundAnswer>, ProblemHttpResult>> RefundAsync(RefundSubmission submission, RefundService refunds, CancellationToken ct) =>
        Answer(await refunds.RefundAsync(submission, ct));

    private static async Task<Results<Ok<RefundAnswer>, ProblemHttpResult>> GetRefundAsync(
        Guid id, [FromHeader(Name = SettlementReadProof.StoreHeader)] string? storeQuery, RefundService refunds, CancellationToken ct) =>
        Answer(await refunds.GetAsync(id, storeQuery, ct));

    /// <summary>
    /// A body declared in a charset that cannot be decoded here (<c>charset=</c>, <c>charset=foo</c>)
    /// is refused as an unsupported media type: the framework's JSON reader would throw on it, and
    /// the request would be answered as a fault (500).
    /// </summary>
    public static IApplicationBuilder UseKnownCharsets(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            if (Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var type) && type.Charset.HasValue && type.Encoding is null)
            {
                await Problems.WriteAsync(context, StatusCodes.Status415UnsupportedMediaType, "The body's charset is not one the operator decodes; send UTF-8 JSON.").ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        });
}
