using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Tests;

/// <summary>
/// A stand-in for the operator: publishes its key set, signs completion notices (SIG3) and void
/// notices with the same key, records the receipts a store delivers to it, and answers refunds
/// (owed, credited once a test says the card took one).
/// </summary>
internal sealed class FakeOperator : IAsyncDisposable
{
    private readonly List<EcdsaSigningKey> _keys = [EcdsaSigningKey.Generate()];
    private readonly Lock _lock = new();
    private WebApplication? _app;
    private readonly HashSet<string> _retired = new(StringComparer.Ordinal);
    private int _jwksFetches;

    private FakeOperator()
    {
    }

    public Uri Url { get; private set; } = null!;

    /// <summary>The key it signs with now (the newest published one).</summary>
    public EcdsaSigningKey Key
    {
        get
        {
            lock (_lock)
            {
                return _keys[^1];
            }
        }
    }

    /// <summary>Every receipt delivery, in arrival order (refused ones too).</summary>
    public ConcurrentQueue<(Guid SettlementId, string Receipt)> Receipts { get; } = new();

    public int JwksFetches => Volatile.Read(ref _jwksFetches);

    /// <summary>What the fake recorded as refunded, by settlement, in minor units.</summary>
    public ConcurrentDictionary<Guid, long> Refunded { get; } = new();

    /// <summary>Every refund request a store sent, as it came (a compact JWS), in arrival order.</summary>
    public ConcurrentQueue<string> RefundRequests { get; } = new();

    /// <summary>When set, the refund endpoint refuses with this problem code (409).</summary>
    public string? RefundRefusal { get; set; }

    /// <summary>The notice of each refund answered, as the fake holds it now (its state moved on by <see cref="Credit"/>).</summary>
    public ConcurrentDictionary<Guid, RefundNotice> RefundNotices { get; } = new();

    /// <summary>Every read of a refund (<c>GET /v1/refunds/{id}</c>): its id and the store's signed query, in arrival order.</summary>
    public ConcurrentQueue<(Guid RefundId, string? StoreQuery)> RefundReads { get; } = new();

    /// <summary>When set, a refund's read refuses with this problem code (404).</summary>
    public string? RefundReadRefusal { get; set; }

    /// <summary>When set, a refund's read answers this instead of the signed notice it holds (given that notice).</summary>
    public Func<RefundNotice, string>? RefundReadAnswer { get; set; }

    /// <summary>The status the receipt endpoint answers with.</summary>
    public int ReceiptStatus { get; set; } = StatusCodes.Status200OK;

    public static async Task<FakeOperator> StartAsync()
    {
        var fake = new FakeOperator();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/.well-known/jwks.json", () =>
        {
            Interlocked.Increment(ref fake._jwksFetches);
            return Results.Text(fake.KeySet().ToJson(), "application/jwk-set+json");
        });
        app.MapPost("/v1/settlements/{id:guid}/receipt", async (Guid id, HttpRequest request) =>
        {
            var delivery = await JsonSerializer.DeserializeAsync<ReceiptDelivery>(request.Body, ProtocolJson.Options);
            fake.Receipts.Enqueue((id, delivery!.Receipt));
            return Results.StatusCode(fake.ReceiptStatus);
        });
        // Refunds: recorded, and answered with a signed notice of the amount owed (no checks of its own).
        app.MapPost("/v1/refunds", async (HttpRequest request) =>
        {
            var submission = await JsonSerializer.DeserializeAsync<RefundSubmission>(request.Body, ProtocolJson.Options);
            fake.RefundRequests.Enqueue(submission!.Request);
            if (fake.RefundRefusal is { } code)
            {
                return Results.Problem(statusCode: StatusCodes.Status409Conflict, type: ProblemCode.TypePrefix + code, extensions: new Dictionary<string, object?> { ["code"] = code });
            }

            var refund = JsonSerializer.Deserialize<RefundRequest>(System.Buffers.Text.Base64Url.DecodeFromChars(submission.Request.Split('.')[1]), ProtocolJson.Options)!;
            var total = fake.Refunded.AddOrUpdate(refund.SettlementId, refund.Amount.MinorUnits, (_, before) => before + refund.Amount.MinorUnits);
            var notice = fake.RefundNotices.GetOrAdd(refund.RefundId, _ => new RefundNotice(refund.RefundId, refund.SettlementId, "order", refund.StoreId, refund.Amount,
                new OpenPurse.Protocol.Money(total, refund.Amount.Currency), RefundNoticeStates.Owed, "•••• 1234", DateTimeOffset.UtcNow));
            return Results.Json(new RefundAnswer(SignedMessage.Sign(fake.Key, notice, MessageTypes.RefundNotice)), ProtocolJson.Options);
        });
        // A refund's notice now, to any caller that sends a query (the real operator checks it; tests read what came).
        app.MapGet("/v1/refunds/{id:guid}", (Guid id, HttpRequest request) =>
        {
            var query = request.Headers[SettlementReadProof.StoreHeader].ToString();
            fake.RefundReads.Enqueue((id, query.Length == 0 ? null : query));
            if (fake.RefundReadRefusal is not null || !fake.RefundNotices.TryGetValue(id, out var notice))
            {
                var refused = fake.RefundReadRefusal ?? "refund.not_found";
                return Results.Problem(statusCode: StatusCodes.Status404NotFound, type: ProblemCode.TypePrefix + refused, extensions: new Dictionary<string, object?> { ["code"] = refused });
            }

            var answer = fake.RefundReadAnswer is { } answering ? answering(notice) : SignedMessage.Sign(fake.Key, notice, MessageTypes.RefundNotice);
            return Results.Json(new RefundAnswer(answer), ProtocolJson.Options);
        });
        await app.StartAsync();
        fake._app = app;
        fake.Url = new Uri(app.Urls.Single());
        return fake;
    }

    /// <summary>Publishes a new key beside the old one and signs with it from now on.</summary>
    public EcdsaSigningKey RotateKey()
    {
        var key = EcdsaSigningKey.Generate();
        lock (_lock)
        {
            _keys.Add(key);
        }

        return key;
    }

    /// <summary>Retires a key: no longer published (it stays the signing key only if it was the newest).</summary>
    public void RetireKey(EcdsaSigningKey key)
    {
        lock (_lock)
        {
            _retired.Add(key.KeyId);
        }
    }

    /// <summary>The card took the refund: its notice says credited from now on.</summary>
    public void Credit(Guid refundId) =>
        RefundNotices.AddOrUpdate(refundId, _ => throw new InvalidOperationException($"No refund {refundId}."), (_, owed) => owed with { State = RefundNoticeStates.Credited, At = DateTimeOffset.UtcNow });

    public string Sign(CompletionNotice notice) => SignedMessage.Sign(Key, notice, MessageTypes.CompletionNotice);

    public string Sign(VoidNotice notice) => SignedMessage.Sign(Key, notice, MessageTypes.VoidNotice);

    public JsonWebKeySet KeySet()
    {
        lock (_lock)
        {
            return new JsonWebKeySet(_keys.Where(k => !_retired.Contains(k.KeyId)).Select(k => k.PublicKey));
        }
    }

    /// <summary>Stops answering, so that the store finds it unreachable.</summary>
    public async Task StopAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        foreach (var key in _keys)
        {
            key.Dispose();
        }
    }
}
