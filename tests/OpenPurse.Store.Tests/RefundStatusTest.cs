using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store.Tests;

/// <summary>
/// The store owner sees whether a refund reached the card: listing an order's refunds
/// (<c>GET /v1/admin/orders/{orderNo}/refunds</c>, <c>openpurse-store refunds</c>) asks the operator
/// about each open one, with the paid member store's signed query, and records the operator's
/// signed notice once it says <c>credited</c>. An operator that does not answer, refuses, or answers
/// with what is not that refund's signed notice changes nothing, and the list says so.
/// </summary>
public sealed class RefundStatusTest
{
    [Fact]
    public async Task OwedRefund_ListedOwed_ThenCreditedOnceTheCardTookIt_WithTheOperatorsNotice()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var (order, settlementId, refund) = await PaidAndRefundedAsync(store, TestStore.Tunes, "0.50");

        // The card has not synced: still owed, asked about with the paid member's signed query.
        var owed = await ListOkAsync(store, order.OrderNo);
        var listed = Assert.Single(owed.Refunds);
        Assert.Equal((refund.RefundId, "owed", (RefundNotRefreshed?)null), (listed.RefundId, listed.State, listed.NotRefreshed));
        Assert.Equal((Eur(50), Eur(0), order.Bill.Amount), (owed.Refunded, owed.Credited, owed.Paid));
        var (readId, storeQuery) = Assert.Single(fakeOperator.RefundReads);
        var query = SignedMessage.Verify<SettlementQuery>(storeQuery!, store.Keys.SetFor(TestStore.Tunes), MessageTypes.SettlementQuery, out var error);
        Assert.True(query is not null, error);
        Assert.Equal((refund.RefundId, settlementId, TestStore.Tunes), (readId, query.SettlementId, query.StoreId));

        fakeOperator.Credit(refund.RefundId);
        var credited = await ListOkAsync(store, order.OrderNo);
        listed = Assert.Single(credited.Refunds);
        Assert.Equal(("credited", (RefundNotRefreshed?)null), (listed.State, listed.NotRefreshed));
        Assert.Equal((Eur(50), Eur(50)), (credited.Refunded, credited.Credited));
        var notice = SignedMessage.Verify<RefundNotice>(listed.Notice!, fakeOperator.KeySet(), MessageTypes.RefundNotice, out _);
        Assert.Equal((refund.RefundId, RefundNoticeStates.Credited), (notice!.RefundId, notice.State));
        var recorded = Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None));
        Assert.Equal(("credited", listed.Notice), (recorded.State, recorded.Notice));

        // Credited is final: the operator is not asked again.
        await ListOkAsync(store, order.OrderNo);
        Assert.Equal(2, fakeOperator.RefundReads.Count);
    }

    [Fact]
    public async Task OperatorUnreachable_ListedAsLastRecorded_AndSaysSo_TheCommandExitsOne()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var (order, _, refund) = await PaidAndRefundedAsync(store, TestStore.Books, "1.00");
        fakeOperator.Credit(refund.RefundId);
        await fakeOperator.StopAsync();

        var listed = Assert.Single((await ListOkAsync(store, order.OrderNo)).Refunds);

        Assert.Equal(("owed", "refund.operator_unreachable"), (listed.State, listed.NotRefreshed?.Code));
        Assert.Contains(refund.RefundId.ToString(), listed.NotRefreshed!.Detail, StringComparison.Ordinal);
        Assert.Equal("owed", Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None)).State);

        var (code, output, errors) = await RunAsync(store.Options, order.OrderNo);
        Assert.Equal(1, code);
        Assert.Contains($"{refund.RefundId}        1.00 EUR  owed", output, StringComparison.Ordinal);
        Assert.Contains("as last recorded", output, StringComparison.Ordinal);
        Assert.Contains($"refund {refund.RefundId} not asked about: refund.operator_unreachable", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OperatorRefusesToShowIt_NothingChanges_AndTheListSaysWhy()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var (order, _, refund) = await PaidAndRefundedAsync(store, TestStore.Books, "1.00");
        fakeOperator.Credit(refund.RefundId);
        fakeOperator.RefundReadRefusal = "refund.not_found";

        var listed = Assert.Single((await ListOkAsync(store, order.OrderNo)).Refunds);

        Assert.Equal(("owed", "refund.refused"), (listed.State, listed.NotRefreshed?.Code));
        Assert.Contains("refund.not_found", listed.NotRefreshed!.Detail, StringComparison.Ordinal);
        Assert.Equal("owed", Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None)).State);
    }

    [Fact]
    public async Task NoticeThatIsNotTheRefunds_IsRefused_NothingRecorded()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var (order, _, refund) = await PaidAndRefundedAsync(store, TestStore.Books, "1.00");
        fakeOperator.Credit(refund.RefundId);
        using var stranger = EcdsaSigningKey.Generate();
        var answers = new (string Name, Func<RefundNotice, string> Answer)[]
        {
            ("another refund", n => Sign(fakeOperator, n with { RefundId = Guid.NewGuid() })),
            ("another amount", n => Sign(fakeOperator, n with { Amount = Eur(2) })),
            ("another settlement", n => Sign(fakeOperator, n with { SettlementId = Guid.NewGuid() })),
            ("another store", n => Sign(fakeOperator, n with { StoreId = TestStore.Tunes })),
            ("a state the store does not know", n => Sign(fakeOperator, n with { State = "reversed" })),
            ("a key the operator never published", n => SignedMessage.Sign(stranger, n, MessageTypes.RefundNotice)),
            ("another message type", n => SignedMessage.Sign(fakeOperator.Key, n, MessageTypes.VoidNotice)),
            ("not a JWS", _ => "credited"),
        };

        foreach (var (name, answer) in answers)
        {
            fakeOperator.RefundReadAnswer = answer;
            var listed = Assert.Single((await ListOkAsync(store, order.OrderNo)).Refunds);
            Assert.True(listed.State == "owed" && listed.NotRefreshed?.Code == "refund.operator_unreachable", $"{name}: {listed.State} {listed.NotRefreshed}");
            var recorded = Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None));
            Assert.True(recorded.State == "owed" && recorded.Notice == refund.Notice, name);
        }

        // The operator's own notice, then: recorded.
        fakeOperator.RefundReadAnswer = null;
        Assert.Equal("credited", Assert.Single((await ListOkAsync(store, order.OrderNo)).Refunds).State);
    }

    [Fact]
    public async Task RequestedRefund_TheOperatorDidNotAnswer_IsSentAgainUnderItsId_WhenListed()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));
        await store.PayAsync(order);
        var unreachable = store.Options with { OperatorUrl = new Uri("http://127.0.0.1:1/") };
        using (var output = new StringWriter())
        using (var error = new StringWriter())
        {
            Assert.Equal(1, await RefundCommand.RunAsync(unreachable, new RefundOrder(order.OrderNo, "1.00", null), output, error, CancellationToken.None));
        }

        var requested = Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None));
        Assert.Equal("requested", requested.State);
        var (stillDown, _, downErrors) = await RunAsync(unreachable, order.OrderNo);
        Assert.Equal(1, stillDown);
        Assert.Contains("refund.operator_unreachable", downErrors, StringComparison.Ordinal);
        Assert.Empty(fakeOperator.RefundRequests);

        var (code, listed, errors) = await RunAsync(store.Options, order.OrderNo);

        Assert.True(code == 0, errors);
        Assert.Contains($"{requested.RefundId}        1.00 EUR  owed", listed, StringComparison.Ordinal);
        Assert.Contains("Refunded: 1.00 EUR, of which 0.00 EUR taken by the card.", listed, StringComparison.Ordinal);
        var request = SignedMessage.Verify<RefundRequest>(Assert.Single(fakeOperator.RefundRequests), store.Keys.SetFor(TestStore.Books), MessageTypes.RefundRequest, out _);
        Assert.Equal(requested.RefundId, request?.RefundId);
        Assert.Equal("owed", Assert.Single(await Database(store).RefundsOfAsync(order.OrderNo, CancellationToken.None)).State);
    }

    [Fact]
    public async Task RequestedRefund_RefusedWhenSentAgain_IsListedRefused_WithTheOperatorsCode()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));
        await store.PayAsync(order);
        var unreachable = store.Options with { OperatorUrl = new Uri("http://127.0.0.1:1/") };
        using (var output = new StringWriter())
        using (var error = new StringWriter())
        {
            Assert.Equal(1, await RefundCommand.RunAsync(unreachable, new RefundOrder(order.OrderNo, null, null), output, error, CancellationToken.None));
        }

        fakeOperator.RefundRefusal = "refund.card_blocked";
        var listed = await ListOkAsync(store, order.OrderNo);

        var refused = Assert.Single(listed.Refunds);
        Assert.Equal(("refused", "refund.card_blocked", (RefundNotRefreshed?)null), (refused.State, refused.RefusedCode, refused.NotRefreshed));
        Assert.Equal(Eur(0), listed.Refunded);
        Assert.Single(fakeOperator.RefundRequests);
    }

    [Fact]
    public async Task UnknownOrder_NoToken_AndNoRefunds()
    {
        await using var fakeOperator = await FakeOperator.StartAsync();
        await using var store = await TestStore.StartAsync(fakeOperator);
        var order = await store.PlaceOrderAsync(TestStore.Books, (TestStore.Members[0].Catalog[0].Sku, 1));

        using (var unknown = await GetAsync(store, "test-mall-999999"))
        {
            await TestStore.AssertProblemAsync(unknown, HttpStatusCode.NotFound, "order.not_found");
        }

        foreach (var token in new string?[] { null, "wrong", TestStore.AdminToken + "x" })
        {
            using var refused = await GetAsync(store, order.OrderNo, token);
            await TestStore.AssertProblemAsync(refused, HttpStatusCode.Unauthorized, "admin.unauthorized");
        }

        Assert.Empty((await ListOkAsync(store, order.OrderNo)).Refunds);
        var (code, output, _) = await RunAsync(store.Options, order.OrderNo);
        Assert.Equal(0, code);
        Assert.Contains($"Order {order.OrderNo} (paid {order.Bill.Amount}) has no refunds.", output, StringComparison.Ordinal);
        var (unknownCode, _, error) = await RunAsync(store.Options, "test-mall-999999");
        Assert.Equal(1, unknownCode);
        Assert.Contains("order.not_found", error, StringComparison.Ordinal);
        Assert.Empty(fakeOperator.RefundReads);
    }

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    private static string Sign(FakeOperator fakeOperator, RefundNotice notice) => SignedMessage.Sign(fakeOperator.Key, notice, MessageTypes.RefundNotice);

    private static OrderDatabase Database(TestStore store) => store.App.Services.GetRequiredService<OrderDatabase>();

    // A paid order of the member store, refunded by the owner through the admin API.
    private static async Task<(PlacedOrder Order, Guid SettlementId, RefundView Refund)> PaidAndRefundedAsync(TestStore store, string storeId, string amount)
    {
        var member = TestStore.Members.Single(m => m.StoreId == storeId);
        var order = await store.PlaceOrderAsync(storeId, (member.Catalog[0].Sku, 1));
        var settlementId = Guid.NewGuid();
        await store.PayAsync(order, settlementId);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/admin/refunds") { Content = JsonContent.Create(new RefundOrder(order.OrderNo, amount), options: ProtocolJson.Options) };
        request.Headers.Authorization = new("Bearer", TestStore.AdminToken);
        using var response = await store.Http.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (order, settlementId, await TestStore.ReadAsync<RefundView>(response));
    }

    private static Task<HttpResponseMessage> GetAsync(TestStore store, string orderNo, string? token = TestStore.AdminToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/admin/orders/{Uri.EscapeDataString(orderNo)}/refunds");
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        return store.Http.SendAsync(request);
    }

    private static async Task<OrderRefunds> ListOkAsync(TestStore store, string orderNo)
    {
        using var response = await GetAsync(store, orderNo);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await TestStore.ReadAsync<OrderRefunds>(response);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(StoreOptions options, string orderNo)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await RefundCommand.ListAsync(options, orderNo, output, error, CancellationToken.None);
        return (code, output.ToString(), error.ToString());
    }
}
