using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenPurse.Hosting;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>The application server 30: the public HTTP API for wallets and stores, and the admin API.</summary>
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
        });

        app.MapGet("/.well-known/jwks.json", (ISecurityModule security) =>
            Results.Content(new JsonWebKeySet([security.OperatorKey.PublicKey]).ToJson(), "application/jwk-set+json"))
            .RequireClientRateLimit();

        app.MapGet("/v1/stores/{storeId}/jwks", async (string storeId, StoreRegistry stores, CancellationToken ct) =>
            await stores.FindAsync(storeId, ct) is var (_, keys)
                ? Results.Content(keys.ToJson(), "application/jwk-set+json")
                : Refusal.StoreNotFound($"No store '{storeId}'.").ToResult())
            .RequireClientRateLimit();

        // Each client address within its rate first, then every request in admission control's turn.
        var settlements = app.MapGroup("/v1/settlements").RequireClientRateLimit().RequireRateLimiting(Admission.Policy);
        settlements.MapPost("/", async (StartSettlementRequest request, SettlementService service, CancellationToken ct) =>
        {
            var started = await service.StartAsync(request, ct);
            return started.Refusal?.ToResult() ?? Results.Created($"/v1/settlements/{started.Value!.SettlementId}", started.Value);
        }).WithBodyLimit(SignedBodyLengthMax);
        settlements.MapPost("/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, SettlementService service, CancellationToken ct) =>
            Answer(await service.CompleteAsync(id, request, ct)))
            .WithBodyLimit(CardBodyLengthMax);
        settlements.MapPost("/{id:guid}/receipt", async (Guid id, ReceiptDelivery delivery, SettlementService service, CancellationToken ct) =>
            await service.AcceptReceiptAsync(id, delivery.Receipt, ct) is { Refusal: { } refusal } ? refusal.ToResult() : Results.NoContent())
            .WithBodyLimit(SignedBodyLengthMax);
        settlements.MapGet("/{id:guid}", async (Guid id, SettlementService service, CancellationToken ct) =>
            Answer(await service.GetAsync(id, ct)));

        var cards = app.MapGroup("/v1/cards").RequireClientRateLimit().RequireRateLimiting(Admission.Policy).WithBodyLimit(CardBodyLengthMax);
        cards.MapPost("/sync", async (CardSyncRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.SyncAsync(request, ct)));
        cards.MapPost("/credits/{id:guid}/completion", async (Guid id, CompleteSettlementRequest request, CardSync sync, CancellationToken ct) =>
            Answer(await sync.CompleteCreditAsync(id, request, ct)));

        var admin = app.MapGroup("/v1/admin");
        admin.MapPost("/stores", async (StoreRegistration registration, StoreRegistry stores, CancellationToken ct) =>
            Answer(await stores.RegisterAsync(registration, ct)))
            .WithBodyLimit(RegistrationBodyLengthMax);
        admin.MapPost("/cards/{cardNumber}/block", async (string cardNumber, CardIssuer issuer, CancellationToken ct) =>
            CardId.TryParse(cardNumber, out var cardId) && await issuer.BlockAsync(cardId, ct)
                ? Results.NoContent()
                : Refusal.CardUnknown("No such card.").ToResult());
        return app;
    }

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

    private static IResult Answer<T>(Result<T> result) => result.Refusal?.ToResult() ?? Results.Ok(result.Value);

    /// <summary>
    /// The admin API needs the operator's bearer token. A middleware rather than an endpoint filter,
    /// so an unauthenticated caller learns nothing, not even whether its body would parse.
    /// </summary>
    public static IApplicationBuilder UseAdminToken(this IApplicationBuilder app) =>
        app.UseWhen(context => context.Request.Path.StartsWithSegments("/v1/admin", StringComparison.Ordinal), admin => admin.Use(async (context, next) =>
        {
            var options = context.RequestServices.GetRequiredService<OperatorOptions>();
            var header = context.Request.Headers.Authorization.ToString();
            var presented = Encoding.UTF8.GetBytes(header.StartsWith("Bearer ", StringComparison.Ordinal) ? header[7..] : "");
            var expected = Encoding.UTF8.GetBytes(options.AdminToken ?? "");
            if (options.AdminToken is null || !CryptographicOperations.FixedTimeEquals(SHA256.HashData(presented), SHA256.HashData(expected)))
            {
                await Refusal.Unauthorized("Send the operator's admin token as a bearer token.").ToResult().ExecuteAsync(context).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        }));
}

