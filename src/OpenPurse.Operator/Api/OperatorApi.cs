using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
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
    public static IEndpointRouteBuilder MapOperatorApi(this IEndpointRouteBuilder app)
    {
        // For a load balancer: the node answers and its registry is reachable.
        app.MapGet("/health", async (Database database, CancellationToken ct) =>
        {
            await using var connection = await database.OpenAsync(ct);
            return Results.Text("ok");
        }).AllowAnonymous();

        app.MapGet("/.well-known/jwks.json", (ISecurityModule security) =>
            Results.Content(new JsonWebKeySet([security.OperatorKey.PublicKey]).ToJson(), "application/jwk-set+json")).AllowAnonymous();

        app.MapGet("/v1/stores/{storeId}/jwks", async (string storeId, StoreRegistry stores, CancellationToken ct) =>
            await stores.FindAsync(storeId, ct) is var (_, keys)
                ? Results.Content(keys.ToJson(), "application/jwk-set+json")
                : Refusal.StoreNotFound($"No store '{storeId}'.").ToResult()).AllowAnonymous();

        var settlements = app.MapGroup("/v1/settlements").RequireRateLimiting(Admission.Policy);
        settlements.MapPost("/", async (StartSettlementRequest request, SettlementService service, CancellationToken ct) =>
        {
            var started = await service.StartAsync(request, ct);
            return started.Refusal?.ToResult() ?? Results.Created($"/v1/settlements/{started.Value!.SettlementId}", started.Value);
        }).AllowAnonymous();
        settlements.MapPost("/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, SettlementService service, CancellationToken ct) =>
            Answer(await service.CompleteAsync(id, request, ct))).AllowAnonymous();
        settlements.MapPost("/{id:guid}/receipt", async (Guid id, ReceiptDelivery delivery, SettlementService service, CancellationToken ct) =>
            await service.AcceptReceiptAsync(id, delivery.Receipt, ct) is { Refusal: { } refusal } ? refusal.ToResult() : Results.NoContent()).AllowAnonymous();
        settlements.MapGet("/{id:guid}", async (Guid id, SettlementService service, CancellationToken ct) =>
            Answer(await service.GetAsync(id, ct))).AllowAnonymous();

        var cards = app.MapGroup("/v1/cards").RequireRateLimiting(Admission.Policy);
        cards.MapPost("/sync", async (CardSyncRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.SyncAsync(request, ct))).AllowAnonymous();
        cards.MapPost("/credits/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.CompleteCreditAsync(id, request, ct))).AllowAnonymous();

        return app;
    }

    /// <summary>A value as 200, a refusal as its problem details.</summary>
    public static IResult Answer<T>(Result<T> result) => result.Refusal?.ToResult() ?? Results.Ok(result.Value);
}
