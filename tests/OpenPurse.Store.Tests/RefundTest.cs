using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store.Tests;

/// <summary>
/// Refunds by the store owner, through the admin API (<c>POST /v1/admin/refunds</c>, behind the
/// owner's token) and the command line (<c>openpurse-store refund</c>), against a stand-in operator:
/// a paid order is refunded in parts up to what was paid, signed by the member store that was paid;
/// an unpaid order or an amount past what is left is refused before the operator is asked; each
/// refund is recorded with the operator's signed notice, or its refusal.
/// </summary>
public sealed class RefundTest
{
    private static Money Eur(long minor) => new(minor, Currency.Eur);

    [Fact]
    public async Task PartialRefunds_SignedByThePaidMember_RecordedWithTheNotice_OnePastWhatIsLeftRefusedBeforeTheOperator()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Tunes, (TestStore.Members[1].Catalog[0].Sku, 2));
        var settlementId = Guid.NewGuid();
        await store.PayAsync(order, settlementId);
        var paid = order.Bill.Amount;

        var first = await RefundOkAsync(store, new RefundOrder(order.OrderNo, "1.00", "scratched"));
        Assert.Equal((order.OrderNo, settlementId, Eur(100), Eur(100), RefundNoticeStates.Owed), (first.OrderNo, first.SettlementId, first.Amount, first.RefundedTotal, first.State));
        var request = SignedMessage.Verify<RefundRequest>(Assert.Single(fakeOperator.RefundRequests), store.Keys.SetFor(TestStore.Tunes), MessageTypes.RefundRequest, out var error);
        Assert.True(request is not null, error);
        Assert.Equal((first.RefundId, settlementId, TestStore.Tunes, Eur(100), "scratched"), (request.RefundId, request.SettlementId, request.StoreId, request.Amount, request.Reason));

        // All that is left, then nothing more: refused by the store, the operator not asked.
        var rest = await RefundOkAsync(store, new RefundOrder(order.OrderNo, null, null));
        Assert.Equal((paid - Eur(100), paid), (rest.Amount, rest.RefundedTotal));
        using (var past = await PostAsync(store, new RefundOrder(order.OrderNo, "0.01", null)))
        {
            await TestStore.AssertProblemAsync(past, HttpStatusCode.UnprocessableEntity, "refund.exceeds_paid");
        }

        Assert.Equal(2, fakeOperator.RefundRequests.Count);
        var recorded = await store.App.Services.GetRequiredService<OrderDatabase>().RefundsOfAsync(order.OrderNo, CancellationToken.None);
        Assert.Equal([(Eur(100), "owed"), (paid - Eur(100), "owed")], recorded.Select(r => (r.Amount, r.State)));
        Assert.All(recorded, r => Assert.NotNull(r.Notice));
    }

    [Fact]
    public async Task UnpaidOrder_BadAmounts_AndNoToken_AreRefused_TheOperatorNotAsked()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var billed = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));

        using (var unpaid = await PostAsync(store, new RefundOrder(billed.OrderNo, null, null)))
        {
            await TestStore.AssertProblemAsync(unpaid, HttpStatusCode.Conflict, "refund.not_paid");
        }

        using (var unknown = await PostAsync(store, new RefundOrder("test-mall-999999", null, null)))
        {
            await TestStore.AssertProblemAsync(unknown, HttpStatusCode.NotFound, "order.not_found");
        }

        await store.PayAsync(billed);
        foreach (var amount in new[] { "0", "-1.00", "1.001", "1.00 USD", "lots" })
        {
            using var bad = await PostAsync(store, new RefundOrder(billed.OrderNo, amount, null));
            await TestStore.AssertProblemAsync(bad, HttpStatusCode.UnprocessableEntity, "refund.amount_invalid");
        }

        foreach (var token in new string?[] { null, "wrong", TestStore.AdminToken + "x" })
        {
            using var refused = await PostAsync(store, new RefundOrder(billed.OrderNo, null, null), token);
            await TestStore.AssertProblemAsync(refused, HttpStatusCode.Unauthorized, "admin.unauthorized");
        }

        Assert.Empty(fakeOperator.RefundRequests);
    }

    [Fact]
    public async Task OperatorRefuses_IsRecordedAsRefused_AndDoesNotCount()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));
        await store.PayAsync(order);

        fakeOperator.RefundRefusal = "refund.card_blocked";
        using (var refused = await PostAsync(store, new RefundOrder(order.OrderNo, null, null)))
        {
            var detail = await TestStore.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "refund.refused");
            Assert.Contains("refund.card_blocked", detail, StringComparison.Ordinal);
        }

        fakeOperator.RefundRefusal = null;
        var refund = await RefundOkAsync(store, new RefundOrder(order.OrderNo, null, null));
        Assert.Equal(order.Bill.Amount, refund.Amount);
        var recorded = await store.App.Services.GetRequiredService<OrderDatabase>().RefundsOfAsync(order.OrderNo, CancellationToken.None);
        Assert.Equal([("refused", "refund.card_blocked"), ("owed", null)], recorded.Select(r => (r.State, r.RefusedCode)));
    }

    [Fact]
    public async Task OperatorUnreachable_TheSameRefundIsSentAgainUnderItsId()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        var directory = Directory.CreateTempSubdirectory("openpurse-store-").FullName;
        try
        {
            var options = TestStore.OptionsFor(fakeOperator, directory);
            PlacedOrder order;
            await using (var store = await TestStore.StartAsync(options, fakeOperator))
            {
                order = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));
                await store.PayAsync(order);
            }

            // The store owner's command, on the store's data directory, while the operator is down.
            var unreachable = options with { OperatorUrl = new Uri("http://127.0.0.1:1/") };
            var (code, _, error) = await RunAsync(unreachable, order.OrderNo, "1.00", "late");
            Assert.Equal((1, true), (code, error.Contains("refund.operator_unreachable", StringComparison.Ordinal)));

            var (again, output, _) = await RunAsync(options, order.OrderNo, "1.00", "late");
            Assert.Equal(0, again);
            using var keys = Keys.MemberKeys.LoadOrCreate(directory, TestStore.Members.Select(m => m.StoreId));
            var request = SignedMessage.Verify<RefundRequest>(Assert.Single(fakeOperator.RefundRequests), keys.SetFor(TestStore.Books), MessageTypes.RefundRequest, out _);
            Assert.NotNull(request);
            Assert.Contains($"Refund {request.RefundId} of order {order.OrderNo}: 1.00 EUR owed", output, StringComparison.Ordinal);
            Assert.Contains("Refunded in all: 1.00 EUR.", output, StringComparison.Ordinal);
            // One refund, sent twice under one id: recorded once.
            await using var reopened = await TestStore.StartAsync(options, fakeOperator);
            var recorded = await reopened.App.Services.GetRequiredService<OrderDatabase>().RefundsOfAsync(order.OrderNo, CancellationToken.None);
            var only = Assert.Single(recorded);
            Assert.Equal((request.RefundId, "owed"), (only.RefundId, only.State));
        }
        finally
        {
            TestStore.DeleteDirectory(directory);
        }
    }

    [Fact]
    public async Task Command_UnpaidOrder_ExitsOne_AndAsksNobody()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var billed = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));

        var (code, _, error) = await RunAsync(store.Options, billed.OrderNo, null, null);

        Assert.Equal(1, code);
        Assert.Contains("refund.not_paid", error, StringComparison.Ordinal);
        Assert.Empty(fakeOperator.RefundRequests);
    }

    [Fact]
    public async Task AdminApi_OnlyTheOrderNumber_RefundsAllThatIsLeft()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Tunes, (TestStore.Members[1].Catalog[0].Sku, 1));
        await store.PayAsync(order, Guid.NewGuid());

        // As a store owner types it: no amount, no reason.
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/refunds") { Content = new StringContent($$"""{"orderNo":"{{order.OrderNo}}"}""", System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new("Bearer", TestStore.AdminToken);
        using var response = await store.Http.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(order.Bill.Amount, (await TestStore.ReadAsync<RefundView>(response)).Amount);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(StoreOptions options, string orderNo, string? amount, string? reason)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await RefundCommand.RunAsync(options, new RefundOrder(orderNo, amount, reason), output, error, CancellationToken.None);
        return (code, output.ToString(), error.ToString());
    }

    private static Task<HttpResponseMessage> PostAsync(TestStore store, RefundOrder order, string? token = TestStore.AdminToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/refunds") { Content = JsonContent.Create(order, options: ProtocolJson.Options) };
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        return store.Http.SendAsync(request);
    }

    private static async Task<RefundView> RefundOkAsync(TestStore store, RefundOrder order)
    {
        using var response = await PostAsync(store, order);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await TestStore.ReadAsync<RefundView>(response);
    }
}
