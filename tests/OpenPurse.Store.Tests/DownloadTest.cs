using System.Net;

namespace OpenPurse.Store.Tests;

public sealed class DownloadTest : StoreTest
{

    [Fact]
    public async Task Download_BeforePayment_IsRefused()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));

        using var withoutReceipt = await Store.DownloadAsync(order.OrderNo, null);
        // The bill is no receipt, though the store signed it too.
        using var withBill = await Store.DownloadAsync(order.OrderNo, order.BillJws);

        await TestStore.AssertProblemAsync(withoutReceipt, HttpStatusCode.Forbidden, "download.not_paid");
        await TestStore.AssertProblemAsync(withBill, HttpStatusCode.Forbidden, "download.not_paid");
    }

    [Fact]
    public async Task Download_AfterPayment_WithoutTheReceipt_IsRefused()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        await Store.PayAsync(order);

        using var response = await Store.DownloadAsync(order.OrderNo, null);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.Forbidden, "download.not_paid");
    }

    [Fact]
    public async Task Download_WithAnotherOrdersReceipt_IsRefused()
    {
        var mine = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var theirs = await Store.PlaceOrderAsync(TestStore.Books, ("book-2", 1));
        await Store.PayAsync(mine);
        var theirReceipt = await Store.PayAsync(theirs);

        using var response = await Store.DownloadAsync(mine.OrderNo, theirReceipt);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.Forbidden, "download.not_paid");
    }

    [Fact]
    public async Task Download_WithAReceiptOneCharacterOff_IsRefused()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var receipt = await Store.PayAsync(order);
        var last = receipt[^1] == 'A' ? 'B' : 'A';

        using var changed = await Store.DownloadAsync(order.OrderNo, receipt[..^1] + last);
        using var shortened = await Store.DownloadAsync(order.OrderNo, receipt[..^1]);

        await TestStore.AssertProblemAsync(changed, HttpStatusCode.Forbidden, "download.not_paid");
        await TestStore.AssertProblemAsync(shortened, HttpStatusCode.Forbidden, "download.not_paid");
    }

    [Fact]
    public async Task Download_AfterPayment_DeliversEveryItemOfTheBill()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-2", 1), ("book-1", 3));
        var receipt = await Store.PayAsync(order);

        using var response = await Store.DownloadAsync(order.OrderNo, receipt);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("The text of book two.\nThe text of book one.", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Download_UnknownOrder_IsNotFound()
    {
        using var response = await Store.DownloadAsync("test-mall-777777", "x.y.z");

        await TestStore.AssertProblemAsync(response, HttpStatusCode.NotFound, "order.not_found");
    }

    [Fact]
    public async Task Download_RefusedCompletion_NeverUnlocksTheGoods()
    {
        var order = await Store.PlaceOrderAsync(TestStore.Books, ("book-1", 1));
        var notice = Operator.Sign(TestStore.NoticeFor(order) with { Amount = new OpenPurse.Protocol.Money(1, OpenPurse.Protocol.Currency.Eur) });
        using var refused = await Store.CompleteAsWalletAsync(order.OrderNo, notice);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);

        using var response = await Store.DownloadAsync(order.OrderNo, null);

        await TestStore.AssertProblemAsync(response, HttpStatusCode.Forbidden, "download.not_paid");
    }
}
