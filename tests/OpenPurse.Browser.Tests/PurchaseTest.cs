using Microsoft.Playwright;
using OpenPurse.Testing;
using static Microsoft.Playwright.Assertions;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// A purchase as a person makes it at the mall's checkout page (FIG. 12–20): choose an article,
/// agree to the estimate, pick the way to pay, see the signed bill's sum, open the agent's window,
/// put the card on the reader, approve there (FIG. 18), and take the goods. The card then holds
/// exactly the price less, and the operator's books reconcile (the kit checks them).
/// </summary>
public sealed class PurchaseTest
{
    [IntegrationFact(Components.Chromium)]
    public Task Purchase_ProfileSigned_ThroughEveryScreen() =>
        BuyAsync("books", "book-002", "12.50", "signed", "Chapter 1. A bill, a signature, a card that agrees, and a receipt.", capture: true);

    [IntegrationFact(Components.Chromium)]
    public Task Purchase_ProfileLean_ThroughEveryScreen() =>
        BuyAsync("tunes", "song-001", "0.99", "lean", "I put my card in the reader, and the reader said: verify.", capture: false);

    private static async Task BuyAsync(string storeId, string sku, string price, string profile, string content, bool capture)
    {
        // The card is on the reader from the start: the agent reads it as soon as it has the bill.
        await using var kit = await BrowserKit.StartAsync();
        var page = await kit.OpenStoreAsync();

        // FIG. 12: the articles of the mall's stores; this one, once.
        await Screens.SeeAsync(page, "#fig-12", 12, capture);
        var article = page.Locator($"li[data-sku='{sku}'][data-store='{storeId}']");
        await Expect(article).ToContainTextAsync(price);
        await article.Locator("input[name=quantity]").FillAsync("1");
        await article.Locator("button.choose").ClickAsync();

        // FIG. 13: the estimate; agreed.
        var estimate = await Screens.SeeAsync(page, "#fig-13", 13, capture);
        await Expect(estimate).ToContainTextAsync(price);
        await page.Locator("#agree-estimate").ClickAsync();

        // FIG. 14: the way to pay; the store is asked for its signed bill.
        await Screens.SeeAsync(page, "#fig-14", 14, capture);
        await page.Locator($"input[name=method][value={profile}]").CheckAsync();
        await page.Locator("#request-bill").ClickAsync();

        // FIG. 15: the sum of the signed bill (ST5).
        await Screens.SeeAsync(page, "#fig-15", 15, capture);
        await Expect(page.Locator("#bill-amount")).ToContainTextAsync($"{price} EUR");
        var orderNo = (await page.Locator("#bill-order").InnerTextAsync()).Trim();
        Assert.NotEmpty(orderNo);
        await page.Locator("#pay").ClickAsync();

        // FIG. 16: put the card on the reader; the agent's window is where the person approves.
        await Screens.SeeAsync(page, "#fig-16", 16, capture);
        var approval = await kit.Browser.Context.RunAndWaitForPageAsync(() => page.Locator("#open-approval").ClickAsync());
        Assert.StartsWith(kit.AgentUrl.ToString(), approval.Url, StringComparison.Ordinal);

        // FIG. 17: the store's page waits while the card is read and the approval is awaited.
        await Screens.SeeAsync(page, "#fig-17", 17, capture);

        // FIG. 18: the agent's own window: who asks, what, how much, from which balance.
        var bill = await Screens.SeeAsync(approval, "#fig-18", 18, capture);
        await Expect(bill).ToContainTextAsync(kit.StoreOrigin);
        await Expect(bill).ToContainTextAsync(orderNo);
        await Expect(bill).ToContainTextAsync($"{price} EUR");
        await Expect(bill).ToContainTextAsync("50.00 EUR");

        // FIG. 19: approved; the card pays. The test holds the card a moment so the screen is seen.
        kit.Reader.Hold();
        await approval.Locator("#approve").ClickAsync();
        await Screens.SeeAsync(page, "#fig-19", 19, capture);
        await Expect(approval.Locator("#state")).ToContainTextAsync("paying");
        kit.Reader.Release();

        // FIG. 20: done; the receipt and the goods.
        await Screens.SeeAsync(page, "#fig-20", 20, capture);
        await Expect(page.Locator("#receipt-order")).ToContainTextAsync(orderNo);
        await Expect(page.Locator("#receipt-amount")).ToContainTextAsync($"{price} EUR");
        await Expect(approval.Locator("#state")).ToContainTextAsync($"Paid {price} EUR");
        var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#download").ClickAsync());
        var downloaded = await File.ReadAllTextAsync((await download.PathAsync())!);
        Assert.Equal(content, downloaded.Trim());

        Assert.Equal(BrowserKit.Eur("50.00") - BrowserKit.Eur(price), kit.Balance());
    }
}
