using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// One test's whole system, as the demo runs it for a person at a browser: the wallet agent on a
/// free loopback port with its reader, then the operator and the mall pointing their pages at it
/// (both allowed to use it), an issued card loaded with 50.00 EUR, and a chromium of its own.
/// Disposing it reconciles the operator's books first: every test's money must add up.
/// </summary>
internal sealed class BrowserKit : IAsyncDisposable
{
    private readonly string _directory;

    private BrowserKit(string directory, DemoSystem system, TestReader reader, EmulatedCard card, Chromium browser)
    {
        _directory = directory;
        System = system;
        Reader = reader;
        Card = card;
        Browser = browser;
    }

    public DemoSystem System { get; }

    public TestReader Reader { get; }

    public EmulatedCard Card { get; }

    public Chromium Browser { get; }

    /// <summary>The wallet agent's address, e.g. http://127.0.0.1:40123/.</summary>
    public Uri AgentUrl => System.Agent!.Address;

    public string StoreOrigin => Origin(System.StoreUrl);

    public string OperatorOrigin => Origin(System.OperatorUrl);

    public string AgentOrigin => Origin(AgentUrl);

    /// <param name="cardOnReader">False: the card is issued but not yet on the reader (<see cref="InsertCard"/>).</param>
    public static async Task<BrowserKit> StartAsync(bool cardOnReader = true)
    {
        var directory = Directory.CreateTempSubdirectory("openpurse-browser-").FullName;
        var reader = new TestReader();
        DemoSystem? system = null;
        try
        {
            system = await DemoSystem.StartAsync(directory, agentReader: reader);
            var card = await system.IssueCardAsync(Path.Combine(directory, "card.bin"), Eur("50.00"));
            if (cardOnReader)
            {
                reader.Insert(card);
            }

            var browser = await Chromium.LaunchAsync();
            return new BrowserKit(directory, system, reader, card, browser);
        }
        catch
        {
            if (system is not null)
            {
                await system.DisposeAsync();
            }

            reader.Dispose();
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public static Money Eur(string amount) => Money.Parse(amount + " EUR");

    public static string Origin(Uri url) => url.GetLeftPart(UriPartial.Authority);

    /// <summary>Puts the card on the agent's reader, as the person does at FIG. 16 or FIG. 26.</summary>
    public void InsertCard() => Reader.Insert(Card);

    /// <summary>The card's balance in euros, read straight from it.</summary>
    public Money Balance() => Reader.Balance();

    /// <summary>A tab on the mall's checkout page (FIG. 12).</summary>
    public async Task<IPage> OpenStoreAsync()
    {
        var page = await Browser.NewPageAsync();
        await page.GotoAsync(System.StoreUrl.ToString());
        return page;
    }

    /// <summary>A new order at the mall, made as the store's page makes it: its number and its signed bill.</summary>
    public async Task<OrderCreatedResponse> OrderAsync(string storeId, string sku)
    {
        using var store = System.StoreClient();
        using var response = await store.PostAsJsonAsync("v1/orders", new OrderRequest(storeId, [new OrderRequestItem(sku, 1)]), ProtocolJson.Options);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<OrderCreatedResponse>(ProtocolJson.Options))!;
    }

    /// <summary>An HTTP client for the agent that says it comes from <paramref name="origin"/>, with the agent's header.</summary>
    public HttpClient AgentClient(string origin)
    {
        var client = new HttpClient { BaseAddress = AgentUrl };
        client.DefaultRequestHeaders.Add("Origin", origin);
        client.DefaultRequestHeaders.Add("X-OpenPurse-Agent", "1");
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Reader.Release();
        await Browser.DisposeAsync();
        var books = await System.OperatorServices.GetRequiredService<Operator.Registry.Ledger>().ReconcileAsync(CancellationToken.None);
        await System.DisposeAsync();
        Reader.Dispose();
        Card.Dispose();
        Directory.Delete(_directory, recursive: true);
        Assert.True(books.IsClean, $"The operator's books do not reconcile after the test:\n{books.ToText()}");
    }
}
