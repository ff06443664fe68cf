using System.Net;
using System.Net.Http.Json;
using System.Text;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Api;

namespace OpenPurse.Store.Tests;

public sealed class CatalogTest : StoreTest
{

    [Fact]
    public async Task Catalog_Mall_ListsEveryMembersItemsWithTheirStore()
    {
        using var response = await Store.Http.GetAsync(new Uri("/v1/catalog", UriKind.Relative));
        var catalog = await TestStore.ReadAsync<CatalogResponse>(response);

        Assert.Equal(TestStore.MallId, catalog.MallId);
        Assert.Equal([TestStore.Books, TestStore.Tunes, TestStore.Bulk], catalog.Stores.Select(s => s.StoreId));
        Assert.Equal(2 + 1 + TestStore.BulkItems, catalog.Items.Count);
        Assert.Contains(new CatalogItemView(TestStore.Books, "book-2", "Book Two", Money.Parse("12.50 EUR")), catalog.Items);
        Assert.Contains(new CatalogItemView(TestStore.Tunes, "song-1", "Song One", Money.Parse("0.99 EUR")), catalog.Items);
    }

    [Fact]
    public async Task Catalog_NeverShowsTheGoods()
    {
        var body = await Store.Http.GetStringAsync(new Uri("/v1/catalog", UriKind.Relative));

        Assert.Contains("Book One", body, StringComparison.Ordinal);
        Assert.DoesNotContain("The text of book one", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Estimate_TwoLines_PricesEachLineAndSums()
    {
        using var response = await Store.Http.PostAsJsonAsync(
            "/v1/estimates", new OrderRequest(TestStore.Books, [new("book-1", 3), new("book-2", 1)]), ProtocolJson.Options);
        var estimate = await TestStore.ReadAsync<EstimateResponse>(response);

        Assert.Equal(TestStore.Books, estimate.StoreId);
        Assert.Equal(
            [new BillItem("book-1", "Book One", 3, Money.Parse("14.97 EUR")), new BillItem("book-2", "Book Two", 1, Money.Parse("12.50 EUR"))],
            estimate.Lines);
        Assert.Equal(Money.Parse("27.47 EUR"), estimate.Total);
    }

    [Fact]
    public async Task Estimate_IssuesNoOrderNumber()
    {
        using var estimate = await Store.Http.PostAsJsonAsync("/v1/estimates", new OrderRequest(TestStore.Books, [new("book-1", 1)]), ProtocolJson.Options);
        Assert.Equal(HttpStatusCode.OK, estimate.StatusCode);

        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        Assert.Equal("test-mall-000001", order.OrderNo);
    }

    [Fact]
    public async Task Estimate_UnknownSku_IsRefusedAsUnknownItem()
    {
        using var response = await Store.Http.PostAsJsonAsync(
            "/v1/estimates", new OrderRequest(TestStore.Books, [new("book-1", 1), new("song-1", 1)]), ProtocolJson.Options);

        var detail = await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.unknown_item");
        Assert.Contains("song-1", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Order_UnknownSku_IsRefusedAsUnknownItem()
    {
        using var response = await Store.PostOrderAsync(TestStore.Tunes, ("book-1", 1));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.unknown_item");
    }

    [Fact]
    public async Task Order_UnknownStore_IsRefused()
    {
        using var response = await Store.PostOrderAsync("nobody", ("book-1", 1));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.unknown_store");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(101)]
    [InlineData(int.MaxValue)]
    public async Task Order_QuantityOutOfRange_IsRefused(int quantity)
    {
        using var response = await Store.PostOrderAsync(TestStore.Books, ("book-1", quantity));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.invalid_quantity");
    }

    [Theory]
    [InlineData(1, 499)]
    [InlineData(100, 49_900)]
    public async Task Order_QuantityAtTheEdges_IsBilled(int quantity, long totalMinor)
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", quantity));

        Assert.Equal(new Money(totalMinor, Currency.Eur), order.Bill.Amount);
        Assert.Equal(quantity, Assert.Single(order.Bill.Items).Quantity);
    }

    [Fact]
    public async Task Order_TwentyItems_IsBilled()
    {
        var items = Enumerable.Range(1, 20).Select(i => (TestStore.BulkSku(i), 1)).ToArray();

        var order = await Store.PlaceOrderAsync(TestStore.Bulk, items);

        Assert.Equal(20, order.Bill.Items.Count);
        Assert.Equal(Money.Parse("20.00 EUR"), order.Bill.Amount);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(21)]
    public async Task Order_ItemCountOutOfRange_IsRefused(int count)
    {
        var items = Enumerable.Range(1, count).Select(i => (TestStore.BulkSku(i), 1)).ToArray();

        using var response = await Store.PostOrderAsync(TestStore.Bulk, items);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.invalid_items");
    }

    [Fact]
    public async Task Order_SameSkuTwice_IsRefused()
    {
        using var response = await Store.PostOrderAsync(TestStore.Books, ("book-1", 1), ("book-1", 2));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "order.duplicate_item");
    }

    [Theory]
    [InlineData("""{"storeId":"books","items":[{"sku":"book-1","quantity":1}],"extra":1}""")]
    [InlineData("""{"storeId":"books","items":[{"sku":"book-1","quantity":1.5}]}""")]
    [InlineData("""{"storeId":"books","items":[{"sku":"book-1","quantity":"1"}]}""")]
    [InlineData("""{"storeId":"books","items":[{"sku":"book-1"}]}""")]
    [InlineData("""{"storeId":"books","items":[{"sku":null,"quantity":1}]}""")]
    [InlineData("""{"storeId":"books","items":[null]}""")]
    [InlineData("""{"storeId":"books"}""")]
    [InlineData("""{"storeId":null,"items":[]}""")]
    [InlineData("""{"storeId":"books","items":[{"sku":"book-1","quantity":1}]""")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("")]
    public async Task Order_MalformedBody_IsRefusedAsMalformed(string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await Store.Http.PostAsync(new Uri("/v1/orders", UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.BadRequest, "request.malformed");
    }

    [Fact]
    public async Task Order_NotJson_IsRefusedAsMalformed()
    {
        using var content = new StringContent("""{"storeId":"books","items":[{"sku":"book-1","quantity":1}]}""", Encoding.UTF8, "text/plain");
        using var response = await Store.Http.PostAsync(new Uri("/v1/orders", UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.BadRequest, "request.malformed");
    }

    [Fact]
    public async Task Order_BodyOverTheLimit_IsRefusedAsTooLarge()
    {
        var padding = new string(' ', (int)StoreApi.OrderBodyLengthMax + 1);
        using var content = new StringContent(padding + """{"storeId":"books","items":[]}""", Encoding.UTF8, "application/json");
        using var response = await Store.Http.PostAsync(new Uri("/v1/orders", UriKind.Relative), content);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "request.too_large");
    }

    [Fact]
    public async Task GetOrder_Unknown_IsNotFound()
    {
        using var response = await Store.Http.GetAsync(new Uri("/v1/orders/test-mall-999999", UriKind.Relative));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.NotFound, "order.not_found");
    }

    [Fact]
    public async Task UnknownRoute_IsProblemDetails()
    {
        using var response = await Store.Http.GetAsync(new Uri("/v1/nothing-here", UriKind.Relative));

        await TestStore.AssertProblemAsync(response, HttpStatusCode.NotFound, "request.not_found");
    }
}
