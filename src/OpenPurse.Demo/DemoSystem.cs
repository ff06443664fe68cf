using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Operator;
using OpenPurse.Operator.Issuance;
using OpenPurse.Protocol;
using OpenPurse.Store;
using OpenPurse.Store.Keys;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Demo;

/// <summary>
/// The whole system on the embedded defaults: an operator node (SQLite, software key vault) and
/// a mall of member stores, each on its own Kestrel server on 127.0.0.1, the stores registered
/// at the operator with their keys, and cards issued by the operator's issuing station.
/// </summary>
internal sealed class DemoSystem : IAsyncDisposable
{
    public const string AdminToken = "demo-admin-token";
    public const string MallId = "demo-mall";

    private readonly WebApplication _operator;
    private readonly WebApplication _store;

    private DemoSystem(WebApplication operatorApp, WebApplication store, string dataDirectory, string? mallId, IReadOnlyList<MemberStoreOptions> members)
    {
        _operator = operatorApp;
        _store = store;
        DataDirectory = dataDirectory;
        Mall = mallId;
        Stores = members;
        OperatorUrl = new Uri(operatorApp.Urls.First());
        StoreUrl = new Uri(store.Urls.First());
    }

    public Uri OperatorUrl { get; }

    public Uri StoreUrl { get; }

    public string DataDirectory { get; }

    public IServiceProvider OperatorServices => _operator.Services;

    public IServiceProvider StoreServices => _store.Services;

    /// <summary>The mall's id, or null when one store runs alone.</summary>
    public string? Mall { get; }

    /// <summary>The stores this system runs: the mall's members, or the one store.</summary>
    public IReadOnlyList<MemberStoreOptions> Stores { get; }

    /// <summary>The demo mall's member stores and their catalogs.</summary>
    public static IReadOnlyList<MemberStoreOptions> Members { get; } =
    [
        new("books", "Demo Books",
        [
            new CatalogItem("book-001", "A Short Guide to Stored-Value Cards", Money.Parse("4.99 EUR"), "Chapter 1. A card holds value, a counter and a log; it never holds a private key."),
            new CatalogItem("book-002", "Settlement, Step by Step", Money.Parse("12.50 EUR"), "Chapter 1. A bill, a signature, a card that agrees, and a receipt."),
        ]),
        new("tunes", "Demo Tunes",
        [
            new CatalogItem("song-001", "Card Reader Blues (lyrics)", Money.Parse("0.99 EUR"), "I put my card in the reader, and the reader said: verify."),
        ]),
    ];

    /// <summary>Starts operator and mall in <paramref name="dataDirectory"/> and registers the mall's stores.</summary>
    /// <param name="dataDirectory">Where the operator's, the stores' files go.</param>
    /// <param name="operatorUrls">The operator's Kestrel URLs.</param>
    /// <param name="storeUrls">The mall's Kestrel URLs.</param>
    /// <param name="quiet">Servers log warnings only.</param>
    /// <param name="mall">False: one store ("books") without a mall.</param>
    /// <param name="billLifetime">How long the stores' bills are valid.</param>
    public static async Task<DemoSystem> StartAsync(string dataDirectory, string operatorUrls = "http://127.0.0.1:0", string storeUrls = "http://127.0.0.1:0", bool quiet = true, bool mall = true, TimeSpan? billLifetime = null)
    {
        var mallId = mall ? MallId : null;
        var members = mall ? Members : [Members[0]];
        void Quiet(WebApplicationBuilder builder)
        {
            if (quiet)
            {
                // The demo prints its own story; the servers speak up only about problems.
                builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Logging:LogLevel:Default"] = "Warning",
                    ["Logging:LogLevel:OpenPurse"] = "Warning",
                    ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
                    ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                });
            }
        }

        var operatorApp = await OperatorHost.BuildAsync(
            new OperatorOptions
            {
                DataDirectory = Path.Combine(dataDirectory, "operator"),
                CreateVaultIfMissing = true,
                Urls = operatorUrls,
                AdminToken = AdminToken,
            },
            configure: Quiet);
        await operatorApp.StartAsync();
        var operatorUrl = new Uri(operatorApp.Urls.First());

        var store = StoreHost.Build(
            new StoreOptions
            {
                DataDirectory = Path.Combine(dataDirectory, "store"),
                MallId = mallId,
                Members = members,
                OperatorUrl = operatorUrl,
                Urls = storeUrls,
                BillLifetime = billLifetime ?? TimeSpan.FromMinutes(15),
            },
            Quiet);
        await store.StartAsync();
        var system = new DemoSystem(operatorApp, store, dataDirectory, mallId, members);
        await system.RegisterMallAsync();
        return system;
    }

    /// <summary>An HTTP client for the operator (what a wallet uses).</summary>
    public HttpClient OperatorClient(HttpMessageHandler? handler = null) => new(handler ?? new HttpClientHandler()) { BaseAddress = OperatorUrl };

    /// <summary>An HTTP client for the mall.</summary>
    public HttpClient StoreClient(HttpMessageHandler? handler = null) => new(handler ?? new HttpClientHandler()) { BaseAddress = StoreUrl };

    /// <summary>Issues a card into a file (personalized with its diversified keys) and loads value onto it.</summary>
    public async Task<EmulatedCard> IssueCardAsync(string path, Money load, long balanceMaxMinor = 100_000)
    {
        var issuer = _operator.Services.GetRequiredService<CardIssuer>();
        var keys = await issuer.IssueAsync(CancellationToken.None);
        EmulatedCard card;
        try
        {
            card = EmulatedCard.Create(path, new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, balanceMaxMinor));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
        }

        if (load.IsPositive)
        {
            await issuer.LoadAsync(new InProcessReader(card), load, CancellationToken.None);
        }

        return card;
    }

    public async ValueTask DisposeAsync()
    {
        await _store.StopAsync();
        await _operator.StopAsync();
        await _store.DisposeAsync();
        await _operator.DisposeAsync();
    }

    // The operator's administrator registers each member store with its published key and the
    // mall's address for completion notices.
    private async Task RegisterMallAsync()
    {
        var keys = _store.Services.GetRequiredService<MemberKeys>();
        using var http = OperatorClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        foreach (var member in Stores)
        {
            using var response = await http.PostAsJsonAsync("/v1/admin/stores", new
            {
                storeId = member.StoreId,
                name = member.Name,
                mallId = Mall,
                notifyUrl = new Uri(StoreUrl, "/v1/operator/completions").ToString(),
                jwks = System.Text.Json.JsonDocument.Parse(keys.SetFor(member.StoreId).ToJson()).RootElement,
            });
            response.EnsureSuccessStatusCode();
        }
    }
}
