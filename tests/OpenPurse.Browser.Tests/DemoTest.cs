using System.Text.Json;
using OpenPurse.Testing;
using static Microsoft.Playwright.Assertions;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// The demo as a person starts it: it prints where to buy and where to top up in a browser, and
/// the pages there reach the wallet agent it started, which holds a card.
/// </summary>
public sealed class DemoTest
{
    [IntegrationFact(Components.Chromium)]
    public async Task Demo_PrintsWhereToBuyAndTopUpInABrowser_AndThosePagesReachItsAgent()
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-demo-browser-").FullName;
        try
        {
            using var demo = PartyProcess.Start("OpenPurse.Demo", ["--data", directory], new Dictionary<string, string>());
            await demo.WaitForOutputAsync("Serving until Ctrl-C", TimeSpan.FromSeconds(90));
            var lines = demo.Output.Split('\n').Select(line => line.Trim()).ToList();
            var mall = After(lines, "Buy in your browser: open ");
            var operatorUrl = After(lines, "Top up in your browser: open ");
            var agentLine = lines.Single(line => line.StartsWith("Wallet agent http", StringComparison.Ordinal));
            var agent = agentLine.Split(' ')[2];
            Assert.Contains("holds card ••••", agentLine, StringComparison.Ordinal);

            await using var chromium = await Chromium.LaunchAsync();
            foreach (var (url, screen) in new[] { (mall, "#fig-12"), (operatorUrl, "#fig-32") })
            {
                var page = await chromium.NewPageAsync();
                await page.GotoAsync(url);
                await Expect(page.Locator(screen)).ToBeVisibleAsync();
                Assert.Equal(agent.TrimEnd('/'), (await page.Locator("meta[name=openpurse-agent]").GetAttributeAsync("content"))?.TrimEnd('/'));
                var card = await page.EvaluateAsync<string>(
                    "agent => fetch(new URL('v1/card', agent), { headers: { 'X-OpenPurse-Agent': '1' } }).then(r => r.text())", agent);
                Assert.True(JsonDocument.Parse(card).RootElement.GetProperty("present").GetBoolean(), card);
            }

            demo.Terminate();
            Assert.Equal(0, await demo.WaitAsync(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string After(List<string> lines, string prefix) =>
        lines.Single(line => line.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..].Trim();
}
