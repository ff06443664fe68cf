using OpenPurse.Testing;

namespace OpenPurse.Browser.Tests;

/// <summary>The browser the other tests rely on: the system's chromium starts headless, runs a page's script and keeps origins apart.</summary>
public sealed class ChromiumTest
{
    [IntegrationFact(Components.Chromium)]
    public async Task Chromium_RunsAPagesScript_AndKeepsAnotherOriginsAnswerFromIt()
    {
        await using var site = await HostileSite.StartAsync();
        await using var other = await HostileSite.StartAsync();
        other.Serve("/secret", "<!doctype html><title>secret</title><p>only for my own origin</p>");
        var page = site.Serve("/", $$"""
            <!doctype html><html lang="en"><title>probe</title><main><h1 id="out">…</h1></main>
            <script>
            fetch("{{other.Url}}secret").then(r => r.text()).then(t => out.textContent = "read: " + t, e => out.textContent = "refused");
            </script></html>
            """);
        await using var chromium = await Chromium.LaunchAsync();
        var tab = await chromium.NewPageAsync();
        await tab.GotoAsync(page.ToString());

        // The other origin sends no CORS headers: the page's fetch fails instead of reading it.
        await Microsoft.Playwright.Assertions.Expect(tab.Locator("#out")).ToHaveTextAsync("refused");
        Assert.Equal(1000, tab.ViewportSize!.Width);
        await Screens.CheckAccessibleAsync(tab, "the probe page");
    }
}
