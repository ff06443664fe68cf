using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Refunds by a store over real HTTP (<c>POST /v1/refunds</c>, <c>GET /v1/refunds/{id}</c>): only
/// the paid store's signed request for a completed settlement moves value, store → pending, never
/// more in all than was paid, once per refund id; and the books reconcile. The operator's clock is a
/// <see cref="FakeTimeProvider"/>. Every test runs on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class RefundTest
{
    private const long Loaded = 10_000;

    private const long Price = 2_500;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task FullRefund_IsOwedToTheCard_SignedNotice_ReadByItsStore_BooksReconcile()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        var request = Request(kit, settlementId, Eur(Price), "not delivered");

        var notice = await RefundOkAsync(kit, Sign(kit, request));

        Assert.Equal(
            (request.RefundId, settlementId, "shop", Eur(Price), Eur(Price), RefundNoticeStates.Owed, kit.Reader.CardId.Masked),
            (notice.RefundId, notice.SettlementId, notice.StoreId, notice.Amount, notice.RefundedTotal, notice.State, notice.CardMasked));
        Assert.StartsWith("shop-", notice.OrderNo, StringComparison.Ordinal);
        // The store's account gave the amount; it waits in pending for the card's next sync.
        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((0L, Price), (books.Stores, books.Pending));
        await kit.AssertBooksAsync(Eur(Loaded - Price));

        // Its store reads the current notice with its signed query for the settlement.
        var read = await GetOkAsync(kit, request.RefundId, settlementId);
        Assert.Equal((request.RefundId, RefundNoticeStates.Owed, Eur(Price)), (read.RefundId, read.State, read.Amount));

        // The card's next sync takes it as a CREDIT with SIG5 naming the refund; then the notice says credited.
        var credit = (await kit.SyncOkAsync()).Credit;
        Assert.NotNull(credit);
        var update = kit.ValueUpdateOf(credit);
        Assert.Equal((ValueUpdatePurposes.Refund, request.RefundId, Eur(Price)), (update.Purpose, update.SourceId, update.Amount));
        await kit.CompleteCreditOkAsync(credit.ValueUpdateId, kit.RunCredit(credit));
        await kit.AssertBooksAsync(Eur(Loaded));
        var credited = await GetOkAsync(kit, request.RefundId, settlementId);
        Assert.Equal((RefundNoticeStates.Credited, Eur(Price), Eur(Price)), (credited.State, credited.Amount, credited.RefundedTotal));
        books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((0L, 0L), (books.Stores, books.Pending));
        // The same signed request again answers the current notice.
        Assert.Equal(RefundNoticeStates.Credited, (await RefundOkAsync(kit, Sign(kit, request with { IssuedAt = kit.Time.GetUtcNow() }))).State);
    }

    [SuiteFact]
    public async Task PartialRefunds_UpToWhatWasPaid_OnePastIsRefused_WithNothingWritten()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);

        var first = await RefundOkAsync(kit, Sign(kit, Request(kit, settlementId, Eur(1_000))));
        var second = await RefundOkAsync(kit, Sign(kit, Request(kit, settlementId, Eur(1_499))));
        Assert.Equal((Eur(1_000), Eur(2_499)), (first.RefundedTotal, second.RefundedTotal));

        // 0.02 more is past what was paid; 0.01 is exactly the rest.
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, settlementId, Eur(2))), HttpStatusCode.UnprocessableEntity, "refund.exceeds_paid");
        Assert.Equal(2_499, Assert.Single((await kit.ReconcileAsync()).Currencies).Pending);
        var last = await RefundOkAsync(kit, Sign(kit, Request(kit, settlementId, Eur(1))));
        Assert.Equal(Eur(Price), last.RefundedTotal);
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, settlementId, Eur(1))), HttpStatusCode.UnprocessableEntity, "refund.exceeds_paid");
        // The largest amount there is: refused as exceeding, not a fault.
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, settlementId, new Money(1_000_000_000_000_000, Currency.Eur))), HttpStatusCode.UnprocessableEntity, "refund.exceeds_paid");

        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((0L, Price), (books.Stores, books.Pending));
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    [SuiteFact]
    public async Task RacingRefunds_NeverExceedWhatWasPaid()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        // Six refunds of 10.00 at once against 25.00 paid: two fit, whatever the order.
        var requests = Enumerable.Range(0, 6).Select(_ => Sign(kit, Request(kit, settlementId, Eur(1_000)))).ToArray();

        var responses = await Task.WhenAll(requests.Select(jws => kit.Http.PostAsJsonAsync("/v1/refunds", new RefundSubmission(jws), ProtocolJson.Options)));

        try
        {
            Assert.Equal(2, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
            foreach (var refused in responses.Where(r => r.StatusCode != HttpStatusCode.OK))
            {
                Assert.Equal("refund.exceeds_paid", await OperatorKit.CodeOf(refused));
            }
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }

        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((500L, 2_000L), (books.Stores, books.Pending));
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    [SuiteFact]
    public async Task SameRequestAgain_AnswersTheSameNotice_SameIdWithAnotherRequest_IsAConflict()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        var request = Request(kit, settlementId, Eur(1_000));
        var signed = Sign(kit, request);

        var first = await RefundJwsAsync(kit, signed);
        Assert.Equal(first, await RefundJwsAsync(kit, signed));
        // Signed again later to retry: the same refund, the same answer.
        Advance(kit, TimeSpan.FromMinutes(1));
        Assert.Equal(first, await RefundJwsAsync(kit, Sign(kit, request with { IssuedAt = kit.Time.GetUtcNow() })));

        await AssertRefusedAsync(kit, Sign(kit, request with { Amount = Eur(900), IssuedAt = kit.Time.GetUtcNow() }), HttpStatusCode.Conflict, "refund.conflict");
        await AssertRefusedAsync(kit, Sign(kit, request with { Reason = "other", IssuedAt = kit.Time.GetUtcNow() }), HttpStatusCode.Conflict, "refund.conflict");
        Assert.Equal(1_000, Assert.Single((await kit.ReconcileAsync()).Currencies).Pending);
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    [SuiteFact]
    public async Task ForgedOrOtherStoresSignature_AndAnotherStoresSettlement_AreRefused()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        using var stranger = EcdsaSigningKey.Generate();
        using var otherKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("other", otherKey);
        var request = Request(kit, settlementId, Eur(1_000));

        // A key nobody registered; another store's key over a request naming "shop"; a signature changed on the way.
        await AssertRefusedAsync(kit, Sign(kit, request, stranger), HttpStatusCode.UnprocessableEntity, "refund.signature_invalid");
        await AssertRefusedAsync(kit, Sign(kit, request, otherKey), HttpStatusCode.UnprocessableEntity, "refund.signature_invalid");
        var signed = Sign(kit, request);
        await AssertRefusedAsync(kit, signed[..^4] + (signed[^4..] == "AAAA" ? "BBBB" : "AAAA"), HttpStatusCode.UnprocessableEntity, "refund.signature_invalid");
        // Another message type signed by the store is no refund request.
        await AssertRefusedAsync(kit, SignedMessage.Sign(kit.StoreKey, request, MessageTypes.Receipt), HttpStatusCode.UnprocessableEntity, "refund.signature_invalid");
        await AssertRefusedAsync(kit, "not-a-jws", HttpStatusCode.BadRequest, "refund.malformed");
        // The other store, signing its own request for shop's settlement: as if there were none.
        await AssertRefusedAsync(kit, Sign(kit, request with { StoreId = "other" }, otherKey), HttpStatusCode.NotFound, "settlement.not_found");
        await AssertRefusedAsync(kit, Sign(kit, request with { SettlementId = Guid.NewGuid() }), HttpStatusCode.NotFound, "settlement.not_found");

        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((Price, 0L), (books.Stores, books.Pending));
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    [SuiteFact]
    public async Task Amount_Date_AndReason_AreChecked()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        var request = Request(kit, settlementId, Eur(1_000));
        var now = kit.Time.GetUtcNow();

        await AssertRefusedAsync(kit, Sign(kit, request with { Amount = Eur(0) }), HttpStatusCode.UnprocessableEntity, "refund.amount_invalid");
        await AssertRefusedAsync(kit, Sign(kit, request with { Amount = Eur(-100) }), HttpStatusCode.UnprocessableEntity, "refund.amount_invalid");
        await AssertRefusedAsync(kit, Sign(kit, request with { Amount = new Money(1_000, Currency.Usd) }), HttpStatusCode.UnprocessableEntity, "refund.amount_invalid");
        await AssertRefusedAsync(kit, Sign(kit, request with { IssuedAt = now.AddMinutes(-6) }), HttpStatusCode.UnprocessableEntity, "refund.stale");
        await AssertRefusedAsync(kit, Sign(kit, request with { IssuedAt = now.AddMinutes(3) }), HttpStatusCode.UnprocessableEntity, "refund.stale");
        await AssertRefusedAsync(kit, Sign(kit, request with { Reason = new string('x', RefundRequest.ReasonLengthMax + 1) }), HttpStatusCode.BadRequest, "refund.malformed");
        await AssertRefusedAsync(kit, Sign(kit, request with { Reason = "line\nbreak" }), HttpStatusCode.BadRequest, "refund.malformed");
        await AssertRefusedAsync(kit, Sign(kit, request with { RefundId = Guid.Empty }), HttpStatusCode.BadRequest, "refund.malformed");
        Assert.Equal(0, Assert.Single((await kit.ReconcileAsync()).Currencies).Pending);
    }

    [SuiteFact]
    public async Task UnpaidSettlements_Authorized_Voided_Expired_AreNotRefunded()
    {
        await using var kit = await StartKitAsync(settlementTimeout: TimeSpan.FromMinutes(1));
        // Authorized: the card has not paid yet.
        var open = await kit.StartOkAsync(kit.Bill(Eur(Price)));
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, open.SettlementId, Eur(100))), HttpStatusCode.Conflict, "refund.not_paid");
        // Voided: the card's next session proves it never ran the debit.
        var next = await kit.StartOkAsync(kit.Bill(Eur(Price)));
        Assert.Equal("voided", await kit.StateOfAsync(open.SettlementId));
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, open.SettlementId, Eur(100))), HttpStatusCode.Conflict, "refund.not_paid");
        // Expired: no word from the card before the deadline.
        Advance(kit, TimeSpan.FromMinutes(2));
        Assert.Equal(1, (await kit.SweepAsync()).Expired);
        await AssertRefusedAsync(kit, Sign(kit, Request(kit, next.SettlementId, Eur(100))), HttpStatusCode.Conflict, "refund.not_paid");
        Assert.Equal(0, Assert.Single((await kit.ReconcileAsync()).Currencies).Pending);
    }

    [SuiteFact]
    public async Task BlockedCard_IsNotRefunded()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        using (var blocked = await kit.AdminPostAsync($"/v1/admin/cards/{kit.Reader.CardId.Digits}/block"))
        {
            Assert.True(blocked.IsSuccessStatusCode, await blocked.Content.ReadAsStringAsync());
        }

        await AssertRefusedAsync(kit, Sign(kit, Request(kit, settlementId, Eur(100))), HttpStatusCode.Conflict, "refund.card_blocked");
        var books = Assert.Single((await kit.ReconcileAsync()).Currencies);
        Assert.Equal((Price, 0L), (books.Stores, books.Pending));
    }

    [SuiteFact]
    public async Task ReplacedCard_RefundGoesToItsReplacement()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        var path = Path.Combine(kit.Directory, "replacement.card");
        var (_, _, newCard) = await kit.Service<Issuance.CardReplacements>().ReplaceAsync(kit.Reader.CardId, path, "lost", CancellationToken.None);
        Assert.NotNull(newCard);
        var reader = kit.Adopt(Card.EmulatedCard.Open(path));

        await RefundOkAsync(kit, Sign(kit, Request(kit, settlementId, Eur(100))));

        // The replacement takes the old card's balance and the refund, each once.
        var taken = new List<Money>();
        while ((await kit.SyncOkAsync(kit.SyncGreeting(reader))).Credit is { } credit)
        {
            var (authenticated, answer) = kit.TryRunCard(credit.ExternalAuthenticate, credit.Credit, kit.ApprovalOf(credit), reader);
            Assert.True(authenticated.IsOk && answer.IsOk);
            Assert.Equal("credited", (await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer)).State);
            taken.Add(kit.ValueUpdateOf(credit).Amount);
            Assert.True(taken.Count < 5);
        }

        Assert.Equal(Eur(Loaded - Price + 100), kit.Balance(reader));
        Assert.Contains(Eur(100), taken);
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
    }

    [SuiteFact]
    public async Task Reading_NeedsTheRefundsStoresFreshQuery()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);
        var request = Request(kit, settlementId, Eur(1_000));
        await RefundOkAsync(kit, Sign(kit, request));
        using var otherKey = EcdsaSigningKey.Generate();
        await kit.RegisterStoreAsync("other", otherKey);
        var now = kit.Time.GetUtcNow();

        using (var bare = await kit.Http.GetAsync(new Uri($"/v1/refunds/{request.RefundId}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, bare.StatusCode);
            Assert.Equal("refund.proof_required", await OperatorKit.CodeOf(bare));
        }

        foreach (var query in new[]
        {
            SettlementReadProof.ForStore(otherKey, settlementId, "other", now),
            SettlementReadProof.ForStore(kit.StoreKey, Guid.NewGuid(), "shop", now),
            SettlementReadProof.ForStore(kit.StoreKey, settlementId, "shop", now.AddMinutes(-6)),
        })
        {
            using var response = await GetAsync(kit, request.RefundId, query);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("refund.not_found", await OperatorKit.CodeOf(response));
        }

        using var unknown = await GetAsync(kit, Guid.NewGuid(), SettlementReadProof.ForStore(kit.StoreKey, settlementId, "shop", now));
        Assert.Equal("refund.not_found", await OperatorKit.CodeOf(unknown));
    }

    private async Task<OperatorKit> StartKitAsync(TimeSpan? settlementTimeout = null) =>
        await OperatorKit.StartAsync(Loaded, postgres: await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(DateTimeOffset.UtcNow),
            settlementTimeout: settlementTimeout);

    private static async Task<Guid> PurchaseAsync(OperatorKit kit)
    {
        var bill = kit.Bill(Eur(Price));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        return started.SettlementId;
    }

    private static RefundRequest Request(OperatorKit kit, Guid settlementId, Money amount, string? reason = null) =>
        new(Guid.CreateVersion7(), settlementId, "shop", amount, reason, kit.Time.GetUtcNow());

    private static string Sign(OperatorKit kit, RefundRequest request, EcdsaSigningKey? key = null) =>
        SignedMessage.Sign(key ?? kit.StoreKey, request, MessageTypes.RefundRequest);

    private static void Advance(OperatorKit kit, TimeSpan by) => ((FakeTimeProvider)kit.Time).Advance(by);

    private static Task<HttpResponseMessage> PostAsync(OperatorKit kit, string jws) =>
        kit.Http.PostAsJsonAsync("/v1/refunds", new RefundSubmission(jws), ProtocolJson.Options);

    private static async Task<string> RefundJwsAsync(OperatorKit kit, string jws)
    {
        using var response = await PostAsync(kit, jws);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<RefundAnswer>(ProtocolJson.Options))!.Notice;
    }

    private static async Task<RefundNotice> RefundOkAsync(OperatorKit kit, string jws) => Open(kit, await RefundJwsAsync(kit, jws));

    private static async Task AssertRefusedAsync(OperatorKit kit, string jws, HttpStatusCode status, string code)
    {
        using var response = await PostAsync(kit, jws);
        Assert.Equal((status, code), (response.StatusCode, await OperatorKit.CodeOf(response)));
    }

    private static Task<HttpResponseMessage> GetAsync(OperatorKit kit, Guid refundId, string query)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/refunds/{refundId}");
        request.Headers.Add(SettlementReadProof.StoreHeader, query);
        return kit.Http.SendAsync(request);
    }

    private static async Task<RefundNotice> GetOkAsync(OperatorKit kit, Guid refundId, Guid settlementId)
    {
        using var response = await GetAsync(kit, refundId, SettlementReadProof.ForStore(kit.StoreKey, settlementId, "shop", kit.Time.GetUtcNow()));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return Open(kit, (await response.Content.ReadFromJsonAsync<RefundAnswer>(ProtocolJson.Options))!.Notice);
    }

    private static RefundNotice Open(OperatorKit kit, string jws)
    {
        var notice = SignedMessage.Verify<RefundNotice>(jws, kit.OperatorKeys, MessageTypes.RefundNotice, out var error);
        Assert.True(notice is not null, error);
        return notice;
    }
}

/// <summary>Refunds on the embedded default registry, SQLite.</summary>
public sealed class RefundOnSqliteTest : RefundTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Refunds on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class RefundOnPostgreSqlTest(SharedPostgresCluster postgres) : RefundTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
