using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenPurse.Hosting;
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
    /// <summary>A body carrying one signed message (a bill, a receipt) and a few short members.</summary>
    public const long SignedBodyLengthMax = Jws.CompactLengthMax + (4 * 1024);

    /// <summary>A body carrying a card's answer or greeting: a few hundred bytes of base64.</summary>
    public const long CardBodyLengthMax = 4 * 1024;

    /// <summary>A store registration: names, a URL and a key set of a few keys.</summary>
    public const long RegistrationBodyLengthMax = 32 * 1024;

    public static IEndpointRouteBuilder MapOperatorApi(this IEndpointRouteBuilder app)
    {
        // For a load balancer: the node answers and its registry is reachable.
        app.MapGet("/health", async (Database database, CancellationToken ct) =>
        {
            await using var connection = await database.OpenAsync(ct);
            return Results.Text("ok");
        }).AllowAnonymous();

        app.MapGet("/.well-known/jwks.json", (ISecurityModule security) =>
            Results.Content(new JsonWebKeySet([security.OperatorKey.PublicKey]).ToJson(), "application/jwk-set+json"))
            .RequireClientRateLimit().AllowAnonymous();

        app.MapGet("/v1/stores/{storeId}/jwks", async (string storeId, StoreRegistry stores, CancellationToken ct) =>
            await stores.FindAsync(storeId, ct) is var (_, keys)
                ? Results.Content(keys.ToJson(), "application/jwk-set+json")
                : new Refusal(ProblemCode.StoreNotFound, $"No store '{storeId}'.").ToResult())
            .RequireClientRateLimit().AllowAnonymous();

        // Each client address within its rate first, then every request in admission control's turn.
        var settlements = app.MapGroup("/v1/settlements").RequireClientRateLimit().RequireRateLimiting(Admission.Policy);
        settlements.MapPost("/", async (StartSettlementRequest request, SettlementService service, CancellationToken ct) =>
        {
            var started = await service.StartAsync(request, ct);
            return started.Refusal?.ToResult() ?? Results.Created($"/v1/settlements/{started.Value!.SettlementId}", started.Value);
        }).WithBodyLimit(SignedBodyLengthMax).AllowAnonymous();
        settlements.MapPost("/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, SettlementService service, CancellationToken ct) =>
            Answer(await service.CompleteAsync(id, request, ct)))
            .WithBodyLimit(CardBodyLengthMax).AllowAnonymous();
        settlements.MapPost("/{id:guid}/receipt", async (Guid id, ReceiptDelivery delivery, SettlementService service, CancellationToken ct) =>
            await service.AcceptReceiptAsync(id, delivery.Receipt, ct) is { Refusal: { } refusal } ? refusal.ToResult() : Results.NoContent())
            .WithBodyLimit(SignedBodyLengthMax).AllowAnonymous();
        // Open to anyone on the listener: the proof of belonging is checked against the settlement itself.
        settlements.MapGet("/{id:guid}", async (Guid id, HttpRequest http, SettlementService service, CancellationToken ct) =>
            Answer(await service.GetAsync(id, http.Headers[SettlementReadProof.StoreHeader], http.Headers[SettlementReadProof.WalletHeader], ct))).AllowAnonymous();

        var cards = app.MapGroup("/v1/cards").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        cards.MapPost("/sync", async (CardSyncRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.SyncAsync(request, ct))).AllowAnonymous();
        cards.MapPost("/credits/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.CompleteCreditAsync(id, request, ct))).AllowAnonymous();

        return app;
    }

    /// <summary>A value as 200, a refusal as its problem details.</summary>
    public static IResult Answer<T>(Result<T> result) => result.Refusal?.ToResult() ?? Results.Ok(result.Value);

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
