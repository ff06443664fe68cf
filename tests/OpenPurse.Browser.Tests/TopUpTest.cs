using OpenPurse.Testing;
using static Microsoft.Playwright.Assertions;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// A top-up as a person makes it at the operator's page (FIG. 25–32): from the top page to the
/// payment screen, the card on the reader, the amount, the credit card typed into the agent's own
/// window (FIG. 29, the authorizer's test card), and the completion; the card then holds exactly
/// the amount more, and the operator's books reconcile (the kit checks them).
/// </summary>
public sealed class TopUpTest
{
    [IntegrationFact(Components.Chromium)]
    public async Task TopUp_WithTheAuthorizersTestCard_ThroughEveryScreen()
    {
        await using var kit = await BrowserKit.StartAsync(cardOnReader: false);
        var page = await kit.Browser.NewPageAsync();
        await page.GotoAsync(kit.System.OperatorUrl.ToString());

        // FIG. 32: the top page, where the series starts (and ends).
        await Screens.SeeAsync(page, "#fig-32", 32, capture: true);
        await page.Locator("#start-topup").ClickAsync();

        // FIG. 25: the payment screen.
        await Screens.SeeAsync(page, "#fig-25", 25, capture: true);
        await page.Locator("#pay-in").ClickAsync();

        // FIG. 26: put the card on the reader; the page asks the agent until one is there.
        await Screens.SeeAsync(page, "#fig-26", 26, capture: true);
        kit.Reader.HoldAfter(1);
        kit.InsertCard();

        // FIG. 27: the card is there and read; the page asks once more that it stays (the test's
        // hand holds that answer back long enough for the screen to be seen).
        await Screens.SeeAsync(page, "#fig-27", 27, capture: true);
        kit.Reader.Release();

        // FIG. 28: the amount.
        await Screens.SeeAsync(page, "#fig-28", 28, capture: true);
        var before = kit.Balance();
        await page.Locator("#amount").FillAsync("20.00");
        await page.Locator("#currency").SelectOptionAsync("EUR");
        await page.Locator("#continue").ClickAsync();

        // FIG. 29: the credit card, typed into the agent's own window, never into the operator's page.
        var approval = await kit.Browser.Context.RunAndWaitForPageAsync(() => page.Locator("#open-approval").ClickAsync());
        Assert.StartsWith(kit.AgentUrl.ToString(), approval.Url, StringComparison.Ordinal);
        var entry = await Screens.SeeAsync(approval, "#fig-29", 29, capture: true);
        await Expect(entry).ToContainTextAsync("20.00 EUR");
        await Expect(entry).ToContainTextAsync(kit.OperatorOrigin);
        await approval.Locator("#number").FillAsync("4242 4242 4242 4242");
        await approval.Locator("#expiry").FillAsync($"12/{(DateTime.UtcNow.Year + 2) % 100:00}");
        await approval.Locator("#pin").FillAsync("1234");

        // FIG. 30: processing; the test holds the card a moment so the screen is seen.
        kit.Reader.Hold();
        await approval.Locator("#approve").ClickAsync();
        await Screens.SeeAsync(page, "#fig-30", 30, capture: true);
        kit.Reader.Release();

        // FIG. 31: done, with the balance the card now holds.
        var expected = before + BrowserKit.Eur("20.00");
        await Screens.SeeAsync(page, "#fig-31", 31, capture: true);
        await Expect(page.Locator("#topup-amount")).ToContainTextAsync("20.00 EUR");
        await Expect(page.Locator("#balance-after")).ToContainTextAsync(expected.ToString());
        Assert.Equal(expected, kit.Balance());

        // Back to the top page, where the series ends.
        await page.Locator("#back-to-top").ClickAsync();
        await Expect(page.Locator("#fig-32")).ToBeVisibleAsync();

        // Nothing the person typed stayed in the agent's window.
        var window = await approval.ContentAsync();
        Assert.DoesNotContain("4242 4242 4242 4242", window, StringComparison.Ordinal);
        Assert.DoesNotContain("4242424242424242", window, StringComparison.Ordinal);
    }
}
