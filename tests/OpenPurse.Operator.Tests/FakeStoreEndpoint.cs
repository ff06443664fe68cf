using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The store's side of the operator's notices, on Kestrel (127.0.0.1, free port): records every
/// <c>POST /v1/operator/completions</c> (ACN) and <c>POST /v1/operator/voids</c> (void notice), and answers
/// <c>GET /v1/operator/statements/{storeId}</c> with <see cref="Statement"/>.
/// Voids are acknowledged with 204; a completion is answered with the receipt <see cref="Receipt"/>
/// makes, or 500 while it makes none (the operator then tells the store again at a later sweep),
/// or refused with a problem while <see cref="Refusal"/> is set.
/// </summary>
internal sealed class FakeStoreEndpoint : IAsyncDisposable
{
    private WebApplication _app = null!;

    /// <summary>The address to register as the store's notify URL.</summary>
    public string CompletionsUrl { get; private set; } = null!;

    /// <summary>Every ACN (compact JWS) delivered, in order.</summary>
    public ConcurrentQueue<string> Completions { get; } = new();

    /// <summary>Every void notice (compact JWS) delivered, in order.</summary>
    public ConcurrentQueue<string> Voids { get; } = new();

    /// <summary>The receipt (SIG4) to answer an ACN with; null: answer 500.</summary>
    public Func<string, string?>? Receipt { get; set; }

    /// <summary>Whether void notices are answered 500 instead of 204, as by a store that is down.</summary>
    public bool VoidsFail { get; set; }

    /// <summary>The problem code to refuse an ACN with (422), as a store that does not know the bill does; null: do not refuse.</summary>
    public string? Refusal { get; set; }

    /// <summary>
    /// A page of the store's signed statement (compact JWS) for <c>GET /v1/operator/statements/{storeId}</c>,
    /// given the store id and the page's <see cref="StatementQuery.After"/> (read from the query, not
    /// verified); null: answer 404.
    /// </summary>
    public Func<string, Guid?, string?>? Statement { get; set; }

    /// <summary>Every statement query received (read from its compact JWS, not verified), in order.</summary>
    public ConcurrentQueue<StatementQuery> StatementQueries { get; } = new();

    public static async Task<FakeStoreEndpoint> StartAsync()
    {
        var store = new FakeStoreEndpoint();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.ConfigureHttpJsonOptions(json => ProtocolJson.Configure(json.SerializerOptions));
        store._app = builder.Build();
        store._app.MapPost("/v1/operator/completions", (CompletionDelivery delivery) =>
        {
            store.Completions.Enqueue(delivery.CompletionNotice);
            if (store.Refusal is { } code)
            {
                return Results.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, extensions: new Dictionary<string, object?> { ["code"] = code });
            }

            return store.Receipt?.Invoke(delivery.CompletionNotice) is { } receipt
                ? Results.Ok(new ReceiptDelivery(receipt))
                : Results.StatusCode(StatusCodes.Status500InternalServerError);
        });
        store._app.MapPost("/v1/operator/voids", (VoidDelivery delivery) =>
        {
            store.Voids.Enqueue(delivery.VoidNotice);
            return store.VoidsFail ? Results.StatusCode(StatusCodes.Status500InternalServerError) : Results.NoContent();
        });
        store._app.MapGet("/v1/operator/statements/{storeId}", (string storeId, [FromHeader(Name = StatementQuery.Header)] string query) =>
        {
            var asked = JsonSerializer.Deserialize<StatementQuery>(Base64Url.DecodeFromChars(query.Split('.')[1]), ProtocolJson.Options)!;
            store.StatementQueries.Enqueue(asked);
            return store.Statement?.Invoke(storeId, asked.After) is { } statement ? Results.Ok(new StatementDelivery(statement)) : Results.NotFound();
        });
        await store._app.StartAsync();
        store.CompletionsUrl = new Uri(new Uri(store._app.Urls.First()), "/v1/operator/completions").ToString();
        return store;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
