using System.Net;
using OpenPurse.CommandLine;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The top-up pages (FIG. 25 to 32), their script and the shared stylesheet: on the operator's
/// public listener only, with their types and protective headers, pointing at the configured
/// wallet agent and at no other host, offering the currency the operator tops cards up in, with
/// every screen and control of the browser contract, and no field for a credit card (the card's
/// data is typed on the agent's page only).
/// </summary>
public sealed class TopUpPageTest : IDisposable
{
    private static readonly string[] s_screens = ["fig-32", "fig-25", "fig-26", "fig-27", "fig-28", "approval", "fig-30", "fig-31", "error"];

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-operator-pages-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task PagesAndAssets_OnThePublicListener_WithTheirTypeAndProtectiveHeaders_AndNoneOnTheAdminListener()
    {
        await using var kit = await OperatorKit.StartAsync();

        foreach (var (path, mediaType) in new[] { ("/", "text/html"), ("/topup.js", "text/javascript"), ("/openpurse.css", "text/css"), ("/openpurse.js", "text/javascript") })
        {
            using var answer = await kit.Http.GetAsync(new Uri(path, UriKind.Relative));
            using var onAdmin = await kit.Admin.GetAsync(new Uri(path, UriKind.Relative));

            Assert.Empty(PageChecks.ServingFaults(answer, mediaType, "http://127.0.0.1:5099"));
            Assert.Equal(HttpStatusCode.NotFound, onAdmin.StatusCode);
            Assert.Equal("application/problem+json", onAdmin.Content.Headers.ContentType?.MediaType);
            Assert.False(onAdmin.Headers.Contains("Content-Security-Policy"));
        }
    }

    [Fact]
    public async Task ConfiguredAgent_InThePolicyAndTheMetaTag_AndTheTopUpCurrencyOffered()
    {
        await using var kit = await OperatorKit.StartAsync(configure: o => o with { AgentUrl = new Uri("http://localhost:47011/"), TopUpMax = "250 JPY", DailyTopUpMax = "1000 JPY" });

        using var answer = await kit.Http.GetAsync(new Uri("/", UriKind.Relative));
        var page = PageChecks.Parse(await answer.Content.ReadAsStringAsync());

        Assert.Empty(PageChecks.ServingFaults(answer, "text/html", "http://localhost:47011"));
        Assert.Equal("http://localhost:47011", page.QuerySelector("meta[name=openpurse-agent]")?.GetAttribute("content"));
        Assert.Equal("JPY:0", page.QuerySelector("meta[name=openpurse-currencies]")?.GetAttribute("content"));
        Assert.Equal("250 JPY", page.QuerySelector("meta[name=openpurse-topup-max]")?.GetAttribute("content"));
    }

    [Fact]
    public async Task Page_ReferencesNoOutsideHost_HasEveryScreenOfTheContract_AndNoCreditCardField()
    {
        await using var kit = await OperatorKit.StartAsync();

        var page = PageChecks.Parse(await kit.Http.GetStringAsync(new Uri("/", UriKind.Relative)));
        var script = await kit.Http.GetStringAsync(new Uri("/topup.js", UriKind.Relative));

        Assert.Empty(PageChecks.OutsideHostFaults(page, "http://127.0.0.1:5099"));
        Assert.Empty(PageChecks.AccessibilityFaults(page, s_screens));
        Assert.Empty(PageChecks.NamedHostFaults(script));
        Assert.Null(PageChecks.ModuleSyntaxFault(script));
        Assert.Equal("/topup.js", Assert.Single(page.QuerySelectorAll("script")).GetAttribute("src"));
        foreach (var id in new[] { "start-topup", "pay-in", "amount", "currency", "continue", "open-approval", "topup-amount", "balance-after", "back-to-top", "start-over" })
        {
            Assert.True(page.GetElementById(id) is not null, $"#{id}");
        }

        Assert.Equal("number", page.GetElementById("amount")!.GetAttribute("type"));
        Assert.Equal("select", page.GetElementById("currency")!.LocalName);
        Assert.Contains("noopener", page.GetElementById("open-approval")!.GetAttribute("rel"), StringComparison.Ordinal);
        Assert.NotNull(page.QuerySelector("#error[role=alert] [data-code]"));
        // The credit card is typed on the agent's page only.
        Assert.Empty(page.QuerySelectorAll("#number, #expiry, #pin, input[type=password], [autocomplete^=cc-]"));
        Assert.Equal(["amount"], page.QuerySelectorAll("input").Select(i => i.Id));
    }

    [Theory]
    [InlineData("HEAD", "/")]
    [InlineData("POST", "/")]
    [InlineData("PUT", "/topup.js")]
    public async Task OtherMethods_ToAPage_RefusedAsEveryOtherUnknownMethod(string method, string path)
    {
        await using var kit = await OperatorKit.StartAsync();

        using var answer = await kit.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative)));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, answer.StatusCode);
        Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("http://wallet.example.org:5099")]
    [InlineData("http://10.0.0.1:5099")]
    [InlineData("http://127.0.0.1:5099/approve")]
    [InlineData("http://127.0.0.1:5099/?x=\"><script>")]
    [InlineData("javascript:alert(1)")]
    [InlineData("not a url")]
    public async Task Serve_HostileAgentUrl_ExitsWithBadConfiguration_BeforeListening(string agentUrl)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CommandLines.InvokeAsync(OperatorCommandLine.Build(),
            ["serve", $"--OpenPurse:Operator:DataDirectory={Path.Combine(_directory, "node")}", "--OpenPurse:Operator:CreateVaultIfMissing=true",
             "--OpenPurse:Operator:Urls=http://127.0.0.1:0", "--OpenPurse:Operator:AdminUrls=http://127.0.0.1:0", $"--OpenPurse:Operator:AgentUrl={agentUrl}"],
            output, error, cancelOnInterrupt: false);

        Assert.Equal(CommandLines.ExitUsage, exit);
        Assert.Contains("AgentUrl", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_directory, "node")), "nothing written for a node that does not start");
    }
}
