using System.Net.Http.Json;
using System.Text.Json;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Tests;

public sealed class BillTest : IAsyncLifetime
{
    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync() => await _operator.DisposeAsync();

    [Fact]
    public async Task Order_InMall_BillCarriesMallOrderNumberAndMemberStoreAndKey()
    {
        await using var store = await TestStore.StartAsync(_operator);

        using var response = await store.PostOrderAsync(TestStore.Tunes, ("song-1", 2));
        var created = await TestStore.ReadAsync<OrderCreatedResponse>(response);

        var jwks = JsonWebKeySet.Parse(await store.Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative)));
        var bill = SignedMessage.Verify<Bill>(created.Bill, jwks, MessageTypes.Bill, out var error);
        Assert.True(bill is not null, error);
        Assert.Equal("test-mall-000001", created.OrderNo);
        Assert.Equal(created.OrderNo, bill.OrderNo);
        Assert.Equal(TestStore.MallId, bill.MallId);
        Assert.Equal(TestStore.Tunes, bill.StoreId);
        Assert.Equal(Money.Parse("1.98 EUR"), bill.Amount);
        Assert.Equal([new BillItem("song-1", "Song One", 2, Money.Parse("1.98 EUR"))], bill.Items);
        Assert.Equal(store.Options.BillLifetime, bill.ExpiresAt - bill.IssuedAt);
        Assert.InRange(bill.IssuedAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));

        // SIG1 is the member store's, not the mall's or another member's.
        var tunesKid = store.Keys.For(TestStore.Tunes).KeyId;
        Assert.Equal(tunesKid, Jws.PeekKeyId(created.Bill));
        Assert.NotNull(SignedMessage.Verify<Bill>(created.Bill, new JsonWebKeySet([jwks.Find(tunesKid)!]), MessageTypes.Bill, out _));
        Assert.Null(SignedMessage.Verify<Bill>(created.Bill, new JsonWebKeySet([store.Keys.For(TestStore.Books).PublicKey]), MessageTypes.Bill, out _));
    }

    [Fact]
    public async Task Jwks_PublishesOneKeyPerMemberStore()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var jwks = JsonWebKeySet.Parse(await store.Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative)));

        Assert.Equal(3, jwks.Keys.Count);
        foreach (var member in TestStore.Members)
        {
            var key = jwks.Find(store.Keys.For(member.StoreId).KeyId);
            Assert.NotNull(key);
            Assert.Equal(("EC", "P-256", "ES256", "sig"), (key.Kty, key.Crv, key.Alg, key.Use));
        }
    }

    [Fact]
    public async Task Jwks_HoldsNoPrivateKey()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var json = await store.Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative));

        using var document = JsonDocument.Parse(json);
        foreach (var key in document.RootElement.GetProperty("keys").EnumerateArray())
        {
            Assert.False(key.TryGetProperty("d", out _), "A published key must not carry the private scalar d.");
        }
    }

    [Fact]
    public async Task Order_MembersOfOneMall_ShareOneSequence()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var first = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var second = await store.PlaceOrderAsync(TestStore.Tunes, ("song-1", 1));
        var third = await store.PlaceOrderAsync(TestStore.Books, ("book-2", 1));

        Assert.Equal(["test-mall-000001", "test-mall-000002", "test-mall-000003"], [first.OrderNo, second.OrderNo, third.OrderNo]);
        Assert.NotEqual(Jws.PeekKeyId(first.BillJws), Jws.PeekKeyId(second.BillJws));
        Assert.Equal(Jws.PeekKeyId(first.BillJws), Jws.PeekKeyId(third.BillJws));
    }

    [Fact]
    public async Task Order_SingleStore_NumbersInTheStoresOwnNamespace()
    {
        await using var store = await TestStore.StartAsync(_operator, mallId: null);

        var order = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        Assert.Equal("books-000001", order.OrderNo);
        Assert.Null(order.Bill.MallId);
        Assert.Equal(TestStore.Books, order.Bill.StoreId);
    }

    [Fact]
    public async Task OrderNumbers_AcrossRestart_StaySequentialAndUnique()
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path);
        var numbers = new List<string>();
        string jwksBefore;
        await using (var store = await TestStore.StartAsync(options, _operator))
        {
            for (var i = 0; i < 3; i++)
            {
                numbers.Add((await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1))).OrderNo);
            }

            jwksBefore = await store.Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative));
        }

        await using (var store = await TestStore.StartAsync(options, _operator))
        {
            for (var i = 0; i < 2; i++)
            {
                numbers.Add((await store.PlaceOrderAsync(TestStore.Tunes, ("song-1", 1))).OrderNo);
            }

            // The keys survive the restart too: bills issued before still verify.
            Assert.Equal(jwksBefore, await store.Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative)));
            Assert.Equal("billed", await store.OrderStateAsync(numbers[0]));
        }

        Assert.Equal(["test-mall-000001", "test-mall-000002", "test-mall-000003", "test-mall-000004", "test-mall-000005"], numbers);
    }

    [Fact]
    public async Task OrderNumbers_ManyAtOnce_AreUniqueAndGapless()
    {
        await using var store = await TestStore.StartAsync(_operator);
        const int Orders = 24;

        var placed = await Task.WhenAll(Enumerable.Range(0, Orders).Select(i =>
            store.PlaceOrderAsync(i % 2 == 0 ? TestStore.Books : TestStore.Tunes, (i % 2 == 0 ? "book-1" : "song-1", 1))));

        var expected = Enumerable.Range(1, Orders).Select(i => $"test-mall-{i:D6}").ToHashSet();
        Assert.True(expected.SetEquals(placed.Select(p => p.OrderNo)));
    }

    [Fact]
    public async Task GetOrder_Billed_ShowsStateAmountAndNoSecrets()
    {
        await using var store = await TestStore.StartAsync(_operator);
        var order = await store.PlaceOrderAsync(TestStore.Books, ("book-2", 2));

        using var response = await store.Http.GetAsync(new Uri("/v1/orders/" + order.OrderNo, UriKind.Relative));
        var view = await TestStore.ReadAsync<OrderView>(response);

        Assert.Equal(order.OrderNo, view.OrderNo);
        Assert.Equal(TestStore.Books, view.StoreId);
        Assert.Equal(TestStore.MallId, view.MallId);
        Assert.Equal("billed", view.State);
        Assert.Equal(Money.Parse("25.00 EUR"), view.Amount);
        Assert.Null(view.PaidAt);
    }

    [Fact]
    public async Task GetOrder_Paid_ShowsNeitherReceiptNorNotice()
    {
        await using var store = await TestStore.StartAsync(_operator);
        var order = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var receipt = await store.PayAsync(order);

        var json = await store.Http.GetStringAsync(new Uri("/v1/orders/" + order.OrderNo, UriKind.Relative));
        var view = JsonSerializer.Deserialize<OrderView>(json, ProtocolJson.Options)!;

        Assert.Equal("paid", view.State);
        Assert.NotNull(view.PaidAt);
        Assert.DoesNotContain(receipt, json, StringComparison.Ordinal);
        Assert.DoesNotContain("*", json, StringComparison.Ordinal);
        Assert.DoesNotContain("bill", json, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Estimate_And_Order_PriceAlike()
    {
        await using var store = await TestStore.StartAsync(_operator);
        var request = new OrderRequest(TestStore.Books, [new("book-1", 2), new("book-2", 3)]);

        using var response = await store.Http.PostAsJsonAsync("/v1/estimates", request, ProtocolJson.Options);
        var estimate = await TestStore.ReadAsync<EstimateResponse>(response);
        var order = await store.PlaceOrderAsync(TestStore.Books, ("book-1", 2), ("book-2", 3));

        Assert.Equal(estimate.Lines, order.Bill.Items);
        Assert.Equal(estimate.Total, order.Bill.Amount);
    }
}
