using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store.Api;

/// <summary>
/// The store's HTTP API. Bodies are read with <see cref="ProtocolJson.Options"/> and written with the
/// same settings (the host's JSON options); every refusal is RFC 9457 problem details with a code of
/// <see cref="ProblemCode"/>, and every endpoint declares the ones it answers.
/// </summary>
internal static class StoreApi
{
    /// <summary>The header that carries the receipt (SIG4) to a download.</summary>
    public const string ReceiptHeader = "X-OpenPurse-Receipt";

    /// <summary>An order or estimate request: a store id and at most 20 short lines.</summary>
    public const long OrderBodyLengthMax = 8 * 1024;

    /// <summary>A body carrying one signed notice from the operator (or a wallet).</summary>
    public const long SignedBodyLengthMax = Jws.CompactLengthMax + (4 * 1024);

    private const string JwkSetMediaType = "application/jwk-set+json";

    public static WebApplication MapStoreApi(this WebApplication app)
    {
        // Open to anyone, each one said so: what protects them is the signatures on their messages
        // (SIG3 completions, void notices, SIG4 receipts) and the order numbers' secrecy.
        app.MapGet("/.well-known/jwks.json", GetKeys).AllowAnonymous()
            .WithName("GetStoreKeys").WithSummary("The store's (or each member store's) public keys (SIG1, SIG4), a JWK set.")
            .Produces(StatusCodes.Status200OK, contentType: JwkSetMediaType).Refuses();

        var v1 = app.MapGroup("/v1");
        v1.MapGet("/catalog", GetCatalog).AllowAnonymous()
            .WithName("GetCatalog").WithSummary("Everything for sale here, across the member stores of a mall.")
            .Refuses();
        v1.MapPost("/estimates", PostEstimateAsync).WithBodyLimit(OrderBodyLengthMax).AllowAnonymous()
            .WithName("Estimate").WithSummary("Prices what a buyer wants (ST3), without making an order.")
            .ReadsJson<OrderRequest>()
            .Refuses(OrderRefusals);
        // Each order is a signed bill and a row: one client address makes only so many.
        v1.MapPost("/orders", PostOrderAsync).WithBodyLimit(OrderBodyLengthMax).RequireClientRateLimit().AllowAnonymous()
            .WithName("CreateOrder").WithSummary("Makes an order (ST5): its number and its bill signed by the store (BILL+SIG1).")
            .ReadsJson<OrderRequest>()
            .Refuses([.. OrderRefusals, ProblemCode.RequestRateLimited]);
        v1.MapGet("/orders/{orderNo}", GetOrderAsync).AllowAnonymous()
            .WithName("GetOrder").WithSummary("An order's state: billed, paid or cancelled.")
            .Refuses(ProblemCode.OrderNotFound);
        v1.MapPost("/orders/{orderNo}/completion", PostWalletCompletionAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("DeliverCompletionFromWallet").WithSummary("The operator's completion notice (ACN+SIG3), brought by the wallet; the store's receipt (SIG4).")
            .ReadsJson<CompletionDelivery>()
            .Refuses(CompletionRefusals);
        // The operator's messages: open to any caller, each checked against the operator's signature.
        v1.MapPost("/operator/completions", PostOperatorCompletionAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("DeliverCompletionFromOperator").WithSummary("The operator's completion notice (ACN+SIG3); the store's receipt (SIG4).")
            .ReadsJson<CompletionDelivery>()
            .Refuses(CompletionRefusals);
        v1.MapPost("/operator/voids", PostOperatorVoidAsync).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous()
            .WithName("DeliverVoid").WithSummary("The operator's notice that a settlement is not paid: its order is cancelled.")
            .ReadsJson<VoidDelivery>()
            .Refuses(ProblemCode.OperatorUnavailable, ProblemCode.VoidSignatureInvalid, ProblemCode.OrderNotFound, ProblemCode.VoidMismatch, ProblemCode.VoidConflict);
        v1.MapGet("/operator/statements/{storeId}", GetStatementAsync).AllowAnonymous()
            .WithName("GetStatement").WithSummary("What a store recorded as paid, signed by it, for the operator's reconciliation.")
            .Refuses(ProblemCode.StatementQueryInvalid, ProblemCode.OperatorUnavailable, ProblemCode.OrderUnknownStore);
        v1.MapGet("/orders/{orderNo}/download", GetDownloadAsync).AllowAnonymous()
            .WithName("Download").WithSummary("The goods of a paid order, against its receipt (SIG4).")
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .Refuses(ProblemCode.OrderNotFound, ProblemCode.DownloadNotPaid, ProblemCode.DownloadItemUnavailable);
        // The store owner's: the admin token (Store:AdminToken), declared by the policy.
        v1.MapPost("/admin/refunds", PostRefundAsync).WithBodyLimit(OrderBodyLengthMax).RequireAuthorization(StoreAdminAccess.Policy)
            .WithName("Refund").WithSummary("Refunds (part of) a paid order: the operator's signed refund notice, recorded with the order.")
            .ReadsJson<RefundOrder>()
            .Refuses(
                ProblemCode.AdminUnauthorized, ProblemCode.OrderNotFound, ProblemCode.RefundNotPaid, ProblemCode.RefundAmountInvalid, ProblemCode.RefundExceedsPaid,
                ProblemCode.RefundRefused, ProblemCode.RefundOperatorUnreachable);
        // Asks the operator about each refund still open first; one it cannot ask about says why, in its entry.
        v1.MapGet("/admin/orders/{orderNo}/refunds", GetRefundsAsync).RequireAuthorization(StoreAdminAccess.Policy)
            .WithName("ListRefunds").WithSummary("An order's refunds, each open one asked about first: owed, or credited once the card took it.")
            .Refuses(ProblemCode.AdminUnauthorized, ProblemCode.OrderNotFound);
        app.MapApiDocument(ApiDocuments.Public);
        return app;
    }

    /// <summary>What an estimate or an order is refused with, besides the framework's refusals.</summary>
    private static ProblemCode[] OrderRefusals =>
    [
        ProblemCode.OrderUnknownStore, ProblemCode.OrderInvalidItems, ProblemCode.OrderInvalidQuantity,
        ProblemCode.OrderDuplicateItem, ProblemCode.OrderUnknownItem,
    ];

    /// <summary>What a completion notice is refused with, besides the framework's refusals.</summary>
    private static ProblemCode[] CompletionRefusals =>
    [
        ProblemCode.OperatorUnavailable, ProblemCode.CompletionSignatureInvalid, ProblemCode.OrderNotFound,
        ProblemCode.CompletionMismatch, ProblemCode.CompletionConflict,
    ];

    /// <summary>Problem details for a refusal.</summary>
    public static ProblemHttpResult Problem(Refusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        return refusal.ToResult();
    }

    private static ContentHttpResult GetKeys(MemberKeys keys) => TypedResults.Text(keys.Set.ToJson(), JwkSetMediaType);

    private static Ok<CatalogResponse> GetCatalog(StoreDirectory directory) =>
        TypedResults.Ok(new CatalogResponse(
            directory.MallId,
            [.. directory.Members.Select(m => new CatalogStoreView(m.StoreId, m.Name))],
            [.. directory.Members.SelectMany(m => m.Items.Select(i => new CatalogItemView(m.StoreId, i.Sku, i.Title, i.Price)))]));

    private static async Task<Results<Ok<EstimateResponse>, ProblemHttpResult>> PostEstimateAsync(HttpRequest request, Checkout checkout)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<OrderRequest>(request).ConfigureAwait(false);
        if (body is null)
        {
            return Problem(malformed!);
        }

        var estimate = checkout.Estimate(body);
        return estimate.Value is { } value ? TypedResults.Ok(value) : Problem(estimate.Refusal!);
    }

    private static async Task<Results<Created<OrderCreatedResponse>, ProblemHttpResult>> PostOrderAsync(HttpContext context, Checkout checkout)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<OrderRequest>(context.Request).ConfigureAwait(false);
        if (body is null)
        {
            return Problem(malformed!);
        }

        var created = await checkout.CreateOrderAsync(body, context.RequestAborted).ConfigureAwait(false);
        return created.Value is { } value
            ? TypedResults.Created("/v1/orders/" + Uri.EscapeDataString(value.OrderNo), value)
            : Problem(created.Refusal!);
    }

    private static async Task<Results<Ok<OrderView>, ProblemHttpResult>> GetOrderAsync(string orderNo, OrderDatabase database, StoreDirectory directory, CancellationToken cancellationToken)
    {
        var order = await database.FindAsync(orderNo, cancellationToken).ConfigureAwait(false);
        if (order is null)
        {
            return Problem(StoreRefusals.OrderNotFound(orderNo));
        }

        var state = order.State switch
        {
            OrderState.Paid => "paid",
            OrderState.Cancelled => "cancelled",
            _ => "billed",
        };
        return TypedResults.Ok(new OrderView(order.OrderNo, order.StoreId, directory.MallId, state, order.Amount, order.CreatedAt, order.PaidAt));
    }

    private static Task<Results<Ok<ReceiptDelivery>, ProblemHttpResult>> PostWalletCompletionAsync(string orderNo, HttpRequest request, CompletionDesk desk) =>
        CompleteAsync(CompletionSource.Wallet, orderNo, request, desk);

    private static Task<Results<Ok<ReceiptDelivery>, ProblemHttpResult>> PostOperatorCompletionAsync(HttpRequest request, CompletionDesk desk) =>
        CompleteAsync(CompletionSource.Operator, null, request, desk);

    private static async Task<Results<Ok<ReceiptDelivery>, ProblemHttpResult>> CompleteAsync(CompletionSource source, string? orderNo, HttpRequest request, CompletionDesk desk)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<CompletionDelivery>(request).ConfigureAwait(false);
        if (body is null)
        {
            return Problem(malformed!);
        }

        var receipt = await desk.CompleteAsync(source, orderNo, body, request.HttpContext.RequestAborted).ConfigureAwait(false);
        return receipt.Value is { } value ? TypedResults.Ok(value) : Problem(receipt.Refusal!);
    }

    /// <summary>The operator's void notice: 204 once it is recorded, now or before (the operator retries until a 2xx).</summary>
    private static async Task<Results<NoContent, ProblemHttpResult>> PostOperatorVoidAsync(HttpRequest request, CompletionDesk desk)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<VoidDelivery>(request).ConfigureAwait(false);
        if (body is null)
        {
            return Problem(malformed!);
        }

        var refusal = await desk.VoidAsync(body, request.HttpContext.RequestAborted).ConfigureAwait(false);
        return refusal is null ? TypedResults.NoContent() : Problem(refusal);
    }

    /// <summary>What a member store recorded as paid, for the operator's reconciliation; the operator's signed query in a header.</summary>
    private static async Task<Results<Ok<StatementDelivery>, ProblemHttpResult>> GetStatementAsync(
        string storeId, [FromHeader(Name = StatementQuery.Header)] string? query, StatementDesk desk, CancellationToken cancellationToken)
    {
        var statement = await desk.StatementAsync(storeId, query, cancellationToken).ConfigureAwait(false);
        return statement.Value is { } value ? TypedResults.Ok(value) : Problem(statement.Refusal!);
    }

    private static async Task<Results<Ok<RefundView>, ProblemHttpResult>> PostRefundAsync(HttpRequest request, RefundDesk desk)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<RefundOrder>(request).ConfigureAwait(false);
        if (body is null)
        {
            return Problem(malformed!);
        }

        var refund = await desk.RefundAsync(body, request.HttpContext.RequestAborted).ConfigureAwait(false);
        return refund.Value is { } value ? TypedResults.Ok(value) : Problem(refund.Refusal!);
    }

    private static async Task<Results<Ok<OrderRefunds>, ProblemHttpResult>> GetRefundsAsync(string orderNo, RefundDesk desk, CancellationToken cancellationToken)
    {
        var refunds = await desk.RefundsOfAsync(orderNo, cancellationToken).ConfigureAwait(false);
        return refunds.Value is { } value ? TypedResults.Ok(value) : Problem(refunds.Refusal!);
    }

    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> GetDownloadAsync(
        string orderNo, [FromHeader(Name = ReceiptHeader)] string? receipt, CompletionDesk desk, CancellationToken cancellationToken)
    {
        var goods = await desk.DownloadAsync(orderNo, receipt, cancellationToken).ConfigureAwait(false);
        return goods.Value is { } content ? TypedResults.Text(content, "text/plain; charset=utf-8") : Problem(goods.Refusal!);
    }
}
