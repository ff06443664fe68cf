using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using OpenPurse.Hosting;
using OpenPurse.Testing;

namespace OpenPurse.Store.Tests;

/// <summary>
/// The checkout page (FIG. 12 to 20), its script and the shared stylesheet: served by the store
/// itself with their types and protective headers, pointing at the configured wallet agent and at
/// no other host, with every screen and control the browser contract names.
/// </summary>
public sealed class CheckoutPageTest : IAsyncLifetime
{
    private static readonly string[] s_screens = ["fig-12", "fig-13", "fig-14", "fig-15", "fig-16", "fig-17", "fig-19", "fig-20", "error"];

    private FakeOperator _operator = null!;

    public async Task InitializeAsync() => _operator = await FakeOperator.StartAsync();

    public async Task DisposeAsync() => await _operator.DisposeAsync();

    [Theory]
    [InlineData("/", "text/html")]
    [InlineData("/shop.js", "text/javascript")]
    [InlineData("/openpurse.css", "text/css")]
    [InlineData("/openpurse.js", "text/javascript")]
    public async Task PageAndAssets_ServedWithTheirTypeAndProtectiveHeaders(string path, string mediaType)
    {
        await using var store = await TestStore.StartAsync(_operator);

        using var answer = await store.Http.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Empty(PageChecks.ServingFaults(answer, mediaType, "http://127.0.0.1:5099"));
        Assert.NotEmpty(await answer.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("http://127.0.0.1:47001", "http://127.0.0.1:47001")]
    [InlineData("http://localhost:47002/", "http://localhost:47002")]
    [InlineData("http://[::1]:47003", "http://[::1]:47003")]
    [InlineData("https://wallet.example.org", "https://wallet.example.org")]
    [InlineData("HTTPS://Wallet.Example.ORG:8443/", "https://wallet.example.org:8443")]
    [InlineData("https://bücher.example:443", "https://xn--bcher-kva.example")]
    public async Task ConfiguredAgent_InThePolicyAndTheMetaTag(string configured, string origin)
    {
        var options = TestStore.OptionsFor(_operator, Directory.CreateTempSubdirectory("openpurse-store-").FullName) with { AgentUrl = new Uri(configured) };
        await using var store = await TestStore.StartAsync(options, _operator, ownsDirectory: true);

        using var answer = await store.Http.GetAsync(new Uri("/", UriKind.Relative));
        var page = PageChecks.Parse(await answer.Content.ReadAsStringAsync());

        Assert.Empty(PageChecks.ServingFaults(answer, "text/html", origin));
        Assert.Equal(origin, page.QuerySelector("meta[name=openpurse-agent]")?.GetAttribute("content"));
        Assert.Single(page.QuerySelectorAll("meta[name=openpurse-agent]"));
    }

    [Theory]
    [InlineData("http://wallet.example.org:5099")]
    [InlineData("http://192.168.1.10:5099")]
    [InlineData("ftp://127.0.0.1:5099")]
    [InlineData("javascript:alert(1)")]
    [InlineData("file:///etc/passwd")]
    [InlineData("http://user:secret@127.0.0.1:5099")]
    [InlineData("http://127.0.0.1:5099/agent")]
    [InlineData("http://127.0.0.1:5099/?a=1")]
    [InlineData("http://127.0.0.1:5099/#x")]
    [InlineData("http://127.0.0.1:5099/\"><script>alert(1)</script>")]
    [InlineData("https://wallet.example.org/'; connect-src *")]
    public void HostileAgentUrl_RefusedAtStart(string configured)
    {
        using var directory = new TempDirectory();
        var options = TestStore.OptionsFor(_operator, directory.Path) with { AgentUrl = new Uri(configured, UriKind.Absolute) };

        var refusal = Assert.Throws<ArgumentException>(() => StoreHost.Build(options));

        Assert.Contains("Store:AgentUrl", refusal.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://wallet.example.org:5099")]
    [InlineData("http://127.0.0.1:5099/\"><script>alert(1)</script>")]
    [InlineData("not a url")]
    public async Task Serve_HostileAgentUrl_ExitsWithBadConfiguration_BeforeListening(string configured)
    {
        using var directory = new TempDirectory();
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await OpenPurse.CommandLine.CommandLines.InvokeAsync(Program.Build(),
            ["serve", $"--Store:DataDirectory={directory.Path}/store", $"--Store:OperatorUrl={_operator.Url}", "--Store:Urls=http://127.0.0.1:0", $"--Store:AgentUrl={configured}"],
            output, error, cancelOnInterrupt: false);

        Assert.Equal(OpenPurse.CommandLine.CommandLines.ExitUsage, exit);
        Assert.Contains("Store:AgentUrl", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(directory.Path, "store")), "nothing written for a store that does not start");
    }

    [Theory]
    [InlineData("not a url")]
    [InlineData("127.0.0.1:5099")]
    public void AgentUrl_NotAnAbsoluteUrl_RefusedByTheConfiguration(string configured)
    {
        var section = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:AgentUrl"] = configured,
        }).Build().GetSection(StoreConfiguration.SectionName);

        var refusal = Assert.Throws<FormatException>(() => StoreConfiguration.Read(section));

        Assert.Contains("Store:AgentUrl", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AgentUrl_ReadFromTheConfiguration_DefaultsToTheLocalAgent()
    {
        static StoreOptions Read(string? agentUrl) => StoreConfiguration.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Store:OperatorUrl"] = "http://127.0.0.1:5080",
            ["Store:AgentUrl"] = agentUrl,
        }).Build().GetSection(StoreConfiguration.SectionName));

        Assert.Equal(new Uri("http://127.0.0.1:5099"), Read(null).AgentUrl);
        Assert.Equal(new Uri("http://127.0.0.1:6000"), Read("http://127.0.0.1:6000").AgentUrl);
    }

    [Fact]
    public async Task Page_ReferencesNoOutsideHost_AndItsScriptAndStylesheetNameNone()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var page = PageChecks.Parse(await store.Http.GetStringAsync(new Uri("/", UriKind.Relative)));
        var script = await store.Http.GetStringAsync(new Uri("/shop.js", UriKind.Relative));
        var stylesheet = await store.Http.GetStringAsync(new Uri("/openpurse.css", UriKind.Relative));
        var shared = await store.Http.GetStringAsync(new Uri("/openpurse.js", UriKind.Relative));

        Assert.Empty(PageChecks.OutsideHostFaults(page, "http://127.0.0.1:5099"));
        Assert.Equal("/shop.js", Assert.Single(page.QuerySelectorAll("script")).GetAttribute("src"));
        Assert.Equal("module", page.QuerySelector("script")!.GetAttribute("type"));
        Assert.Equal("/openpurse.css", Assert.Single(page.QuerySelectorAll("link[rel=stylesheet]")).GetAttribute("href"));
        Assert.Empty(PageChecks.NamedHostFaults(script));
        Assert.Empty(PageChecks.NamedHostFaults(stylesheet));
        Assert.Null(PageChecks.ModuleSyntaxFault(script));
        Assert.Empty(PageChecks.NamedHostFaults(shared));
        Assert.Null(PageChecks.ModuleSyntaxFault(shared));
    }

    [Fact]
    public async Task Page_HasEveryScreenAndControlOfTheContract_AccessiblyShaped()
    {
        await using var store = await TestStore.StartAsync(_operator);

        var page = PageChecks.Parse(await store.Http.GetStringAsync(new Uri("/", UriKind.Relative)));

        Assert.Empty(PageChecks.AccessibilityFaults(page, s_screens));
        foreach (var id in new[] { "articles", "agree-estimate", "back", "request-bill", "bill-order", "bill-amount", "pay", "open-approval", "waiting-text", "receipt-order", "receipt-amount", "download", "start-over" })
        {
            Assert.True(page.GetElementById(id) is not null, $"#{id}");
        }

        Assert.Equal(["signed", "lean"], page.QuerySelectorAll("input[name=method][type=radio]").Select(r => r.GetAttribute("value")));
        Assert.All(new[] { "agree-estimate", "back", "request-bill", "pay", "start-over" }, id => Assert.Equal("button", page.GetElementById(id)!.LocalName));
        var link = page.GetElementById("open-approval")!;
        Assert.Equal(("a", "_blank"), (link.LocalName, link.GetAttribute("target")));
        Assert.Contains("noopener", link.GetAttribute("rel"), StringComparison.Ordinal);
        Assert.Equal("alert", page.GetElementById("error")!.GetAttribute("role"));
        Assert.NotNull(page.QuerySelector("#error [data-code]"));
        Assert.Equal("polite", page.GetElementById("waiting-text")!.GetAttribute("aria-live"));
    }

    [Theory]
    [InlineData("HEAD", "/")]
    [InlineData("POST", "/")]
    [InlineData("PUT", "/shop.js")]
    [InlineData("DELETE", "/openpurse.css")]
    public async Task OtherMethods_ToAPage_RefusedAsEveryOtherUnknownMethod(string method, string path)
    {
        await using var store = await TestStore.StartAsync(_operator);

        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (method == "POST")
        {
            request.Content = new FormUrlEncodedContent([new("decision", "approve")]);
        }

        using var answer = await store.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, answer.StatusCode);
        Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
        Assert.Equal(["GET"], answer.Content.Headers.Allow);
        if (method != "HEAD")
        {
            Assert.Contains("\"code\":\"request.method_not_allowed\"", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }
}

/// <summary>The pages' placeholders are filled HTML-encoded: a value that got past the checks still could not leave its attribute.</summary>
public sealed class PagePlaceholderTest
{
    [Fact]
    public async Task Placeholder_WithMarkup_IsWrittenEncoded_AndStaysInItsAttribute()
    {
        const string hostile = "http://127.0.0.1:1\"><script>alert(1)</script><meta name=\"x";
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapPages(hostile, typeof(StoreHost).Assembly, [("/", "shop.html")]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = Hosting.ServerAddresses.Bound(app, "test") };

        var html = await http.GetStringAsync(new Uri("/", UriKind.Relative));
        var page = PageChecks.Parse(html);

        Assert.Equal(hostile, page.QuerySelector("meta[name=openpurse-agent]")?.GetAttribute("content"));
        Assert.Equal(["/shop.js"], page.QuerySelectorAll("script").Select(s => s.GetAttribute("src")));
        Assert.Empty(page.QuerySelectorAll("meta[name=x]"));
        Assert.DoesNotContain("<script>alert", html, StringComparison.Ordinal);
    }
}
