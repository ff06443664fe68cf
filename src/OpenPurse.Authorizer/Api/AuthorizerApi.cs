using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using OpenPurse.Authorizer.Authorizations;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Api;

/// <summary>
/// The authorizer's HTTP API (docs/authorizer.md). Bodies are read and written with
/// <see cref="ProtocolJson.Options"/>; every refusal is RFC 9457 problem details with a code of
/// <see cref="ProblemCode"/>, and every endpoint declares who may call it and what it refuses.
/// </summary>
internal static class AuthorizerApi
{
    /// <summary>The header that makes an authorization request safe to send again.</summary>
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    /// <summary>Set on an answer that is the one given before to the same key and request.</summary>
    public const string ReplayedHeader = "Idempotent-Replayed";

    /// <summary>An authorization request: an amount, a reference and a JWE of at most 16 KiB.</summary>
    public const long AuthorizeBodyLengthMax = Jwe.CompactLengthMax + (2 * 1024);

    private const string JwkSetMediaType = "application/jwk-set+json";

    public static WebApplication MapAuthorizerApi(this WebApplication app)
    {
        // Open to anyone: the public key that card data is encrypted to.
        app.MapGet("/v1/keys", GetKeys).AllowAnonymous()
            .WithName("GetAuthorizerKeys").WithSummary("The authorizer's public encryption key (ECDH-ES, P-256), a JWK set: encrypt card data to it.")
            .Produces(StatusCodes.Status200OK, contentType: JwkSetMediaType).Refuses();

        app.MapPost("/v1/authorizations", PostAuthorizationAsync).WithBodyLimit(AuthorizeBodyLengthMax).RequireAuthorization(ApiKeys.CallerPolicy)
            .WithName("Authorize").WithSummary("Authorizes a charge on the encrypted card; the same Idempotency-Key and request answer the same authorization.")
            .ReadsJson<AuthorizeRequest>()
            .Refuses(
                ProblemCode.AuthorizerUnauthorized, ProblemCode.IdempotencyKeyRequired, ProblemCode.IdempotencyConflict, ProblemCode.AuthorizationAmountInvalid,
                ProblemCode.CardDataInvalid, ProblemCode.CardNumberInvalid, ProblemCode.CardExpired, ProblemCode.AuthorizerUnavailable);
        app.MapGet("/v1/authorizations", FindAuthorizationAsync).RequireAuthorization(ApiKeys.CallerPolicy)
            .WithName("FindAuthorization").WithSummary("The authorization made under an Idempotency-Key (?idempotencyKey=…), for a caller whose answer was lost.")
            .Refuses(ProblemCode.AuthorizerUnauthorized, ProblemCode.AuthorizationNotFound);
        app.MapGet("/v1/authorizations/{id:guid}", GetAuthorizationAsync).RequireAuthorization(ApiKeys.CallerPolicy)
            .WithName("GetAuthorization").WithSummary("An authorization, with its capture or void.")
            .Refuses(ProblemCode.AuthorizerUnauthorized, ProblemCode.AuthorizationNotFound);
        app.MapPost("/v1/authorizations/{id:guid}/capture", PostCaptureAsync).RequireAuthorization(ApiKeys.CallerPolicy)
            .WithName("Capture").WithSummary("Takes at most the authorized amount; capturing again with the same amount is the same capture.")
            .ReadsJson<CaptureRequest>()
            .Refuses(
                ProblemCode.AuthorizerUnauthorized, ProblemCode.AuthorizationNotFound, ProblemCode.AuthorizationAmountInvalid, ProblemCode.AuthorizationDeclined,
                ProblemCode.AuthorizationVoided, ProblemCode.AuthorizationCaptured, ProblemCode.AuthorizationExpired, ProblemCode.CaptureExceedsAuthorization);
        app.MapPost("/v1/authorizations/{id:guid}/void", PostVoidAsync).RequireAuthorization(ApiKeys.CallerPolicy)
            .WithName("Void").WithSummary("Releases an approved authorization; voiding again is the same void.")
            .ReadsJson<VoidRequest>()
            .Refuses(ProblemCode.AuthorizerUnauthorized, ProblemCode.AuthorizationNotFound, ProblemCode.AuthorizationDeclined, ProblemCode.AuthorizationCaptured);
        app.MapApiDocument(ApiDocuments.Public);
        return app;
    }

    private static ContentHttpResult GetKeys(CardKeys keys) => TypedResults.Text(keys.Set.ToJson(), JwkSetMediaType);

    private static async Task<Results<Created<CreditAuthorization>, Ok<CreditAuthorization>, EmptyHttpResult, ProblemHttpResult>> PostAuthorizationAsync(
        HttpContext context, [FromHeader(Name = IdempotencyKeyHeader)] string? idempotencyKey, AuthorizationDesk desk, AuthorizerOptions options, TimeProvider time)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<AuthorizeRequest>(context.Request).ConfigureAwait(false);
        if (body is null)
        {
            return malformed!.ToResult();
        }

        // Once the request is read, the decision is made and kept even if the caller goes away, as
        // a gateway's is: the caller's retry with the same key then finds it.
        var answer = await desk.AuthorizeAsync(idempotencyKey, body, CancellationToken.None).ConfigureAwait(false);
        if (answer.Value is not { } value)
        {
            return answer.Refusal!.ToResult();
        }

        if (value.Hold)
        {
            // The time-out test card: the authorization is made and kept, and the answer comes
            // later than any caller waits; a retry with the same key finds it at once.
            try
            {
                await Task.Delay(options.TimeoutCardHold, time, context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return TypedResults.Empty;
            }
        }

        if (value.Replayed)
        {
            context.Response.Headers[ReplayedHeader] = "true";
            return TypedResults.Ok(value.Authorization);
        }

        return TypedResults.Created("/v1/authorizations/" + value.Authorization.Id.ToString("D"), value.Authorization);
    }

    private static async Task<Results<Ok<CreditAuthorization>, ProblemHttpResult>> GetAuthorizationAsync(Guid id, AuthorizationDesk desk, CancellationToken cancellationToken) =>
        Answer(await desk.FindAsync(id, cancellationToken).ConfigureAwait(false));

    private static async Task<Results<Ok<CreditAuthorization>, ProblemHttpResult>> FindAuthorizationAsync(
        [FromQuery(Name = "idempotencyKey")] string? idempotencyKey, AuthorizationDesk desk, CancellationToken cancellationToken) =>
        Answer(await desk.FindByKeyAsync(idempotencyKey, cancellationToken).ConfigureAwait(false));

    private static async Task<Results<Ok<CreditAuthorization>, ProblemHttpResult>> PostCaptureAsync(Guid id, HttpRequest request, AuthorizationDesk desk)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<CaptureRequest>(request).ConfigureAwait(false);
        return body is null ? malformed!.ToResult() : Answer(await desk.CaptureAsync(id, body, request.HttpContext.RequestAborted).ConfigureAwait(false));
    }

    private static async Task<Results<Ok<CreditAuthorization>, ProblemHttpResult>> PostVoidAsync(Guid id, HttpRequest request, AuthorizationDesk desk)
    {
        var (body, malformed) = await Refusal.ReadJsonAsync<VoidRequest>(request).ConfigureAwait(false);
        return body is null ? malformed!.ToResult() : Answer(await desk.VoidAsync(id, body, request.HttpContext.RequestAborted).ConfigureAwait(false));
    }

    private static Results<Ok<CreditAuthorization>, ProblemHttpResult> Answer(Result<CreditAuthorization> outcome) =>
        outcome.Value is { } authorization ? TypedResults.Ok(authorization) : outcome.Refusal!.ToResult();

}
