using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Authorizer;
using OpenPurse.Card;
using OpenPurse.Operator;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;
using OpenPurse.Wallet.Agent;
using OpenPurse.Wallet.Readers;
using WalletTrust = OpenPurse.Wallet.Http.WalletTrust;

namespace OpenPurse.Demo;

/// <summary>
/// The whole system on the embedded defaults: an operator node (SQLite, software key vault), a
/// mall of member stores and the credit authorizer in test mode (docs/authorizer.md), each on its
/// own Kestrel server on 127.0.0.1, the stores registered at the operator with their keys, the
/// operator charging top-ups through the authorizer, and cards issued by the operator's issuing station. In TLS
/// mode every party speaks HTTPS with certificates from a CA made for the demo in its data
/// directory, and every client trusts that CA by configuration, with every check on (docs/operations.md, HTTPS between parties).
/// With a reader for it, a wallet agent runs too (docs/browser.md): started first, so that the
/// mall's and the operator's pages can name it, then allowed to serve exactly those two origins.
/// </summary>
internal sealed class DemoSystem : IAsyncDisposable
{
    public const string AdminToken = "demo-admin-token";

    /// <summary>The store owner's token of the demo mall's admin API: another than the operator's, as in any deployment.</summary>
    public const string StoreAdminToken = "demo-store-owner-token";
    public const string MallId = "demo-mall";

    /// <summary>Where TLS mode keeps the demo's CA and server certificates, in the data directory.</summary>
    public const string TlsDirectoryName = "tls";

    private readonly WebApplication _operator;
    private readonly WebApplication _store;
    private readonly WebApplication? _authorizer;

    private DemoSystem(WebApplication operatorApp, WebApplication store, WebApplication? authorizer, RunningAgent? agent, Uri authorizerUrl, string dataDirectory, string? mallId, IReadOnlyList<MemberStoreOptions> members, DeploymentPki? pki, X509Certificate2Collection? trustedRoots)
    {
        _operator = operatorApp;
        _store = store;
        _authorizer = authorizer;
        Agent = agent;
        AuthorizerUrl = authorizerUrl;
        Pki = pki;
        TrustedRoots = trustedRoots;
        DataDirectory = dataDirectory;
        Mall = mallId;
        Stores = members;
        var listeners = operatorApp.Services.GetRequiredService<Listeners>();
        OperatorUrl = listeners.PublicUrls[0];
        OperatorAdminUrl = listeners.AdminUrls[0];
        StoreUrl = new Uri(store.Urls.First());
    }

    public Uri OperatorUrl { get; }

    /// <summary>The operator's admin listener, which only the operator's administrators and auditors reach.</summary>
    public Uri OperatorAdminUrl { get; }

    public Uri StoreUrl { get; }

    /// <summary>The credit authorizer (test mode), which the operator charges top-ups through.</summary>
    public Uri AuthorizerUrl { get; }

    public string DataDirectory { get; }

    /// <summary>The demo's CA and server certificates in TLS mode; null on plain HTTP.</summary>
    public DeploymentPki? Pki { get; }

    /// <summary>The demo's CA certificate, which its clients trust, in TLS mode; null on plain HTTP.</summary>
    public X509Certificate2Collection? TrustedRoots { get; }

    /// <summary>The wallet agent the mall's and the operator's pages use, or null when the system runs without one.</summary>
    public RunningAgent? Agent { get; }

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
        new("courses", "Demo Courses",
        [
            new CatalogItem("course-001", "Exactly Once, in Practice", Money.Parse("20.00 EUR"), "Lesson 1. Record before you ask; ask again with the same key; let the card's log decide."),
        ],
        PointsPerUnit: 10),
        new("rewards", "Demo Rewards",
        [
            new CatalogItem("sticker-001", "OpenPurse sticker (printable)", Money.Parse("150 PTS"), "A card, a reader and a padlock, in one line of ASCII: [=]-[#]-[*]"),
        ]),
    ];

    /// <summary>Starts operator and mall in <paramref name="dataDirectory"/> and registers the mall's stores.</summary>
    /// <param name="dataDirectory">Where the operator's, the stores' files go.</param>
    /// <param name="operatorUrls">The operator's Kestrel URLs; by default a free port on 127.0.0.1, over https in TLS mode.</param>
    /// <param name="storeUrls">The mall's Kestrel URLs; by default as the operator's.</param>
    /// <param name="quiet">Servers log warnings only.</param>
    /// <param name="mall">False: one store ("books") without a mall.</param>
    /// <param name="billLifetime">How long the stores' bills are valid.</param>
    /// <param name="settlementTimeout">How long a settlement waits for its card before the sweeper expires it; the operator's default when null.</param>
    /// <param name="tls">
    /// HTTPS between all parties: a CA and server certificates for localhost and 127.0.0.1 are made
    /// in <paramref name="dataDirectory"/>/tls (an existing CA there is used again), the operator
    /// and the mall serve them and trust that CA when calling each other, and
    /// <see cref="OperatorClient"/> and <see cref="StoreClient"/> trust it too.
    /// </param>
    /// <param name="clientRateLimit">Requests per second and burst one client address may make at the operator, and orders at the mall; their defaults when null.</param>
    /// <param name="authorizer">The credit authorizer the operator charges top-ups through; when null, the demo runs its own (test mode).</param>
    /// <param name="agentReader">
    /// When given, a wallet agent on a free loopback port holding this reader, started before the
    /// operator and the mall (their pages carry its address), then told the operator's address and
    /// allowed their two origins.
    /// </param>
    public static async Task<DemoSystem> StartAsync(string dataDirectory, string? operatorUrls = null, string? storeUrls = null, bool quiet = true, bool mall = true, TimeSpan? billLifetime = null, bool tls = false, TimeSpan? settlementTimeout = null, (int PerSecond, int Burst)? clientRateLimit = null,
        AuthorizerClientOptions? authorizer = null, ICardReader? agentReader = null)
    {
        var mallId = mall ? MallId : null;
        var members = mall ? Members : [Members[0]];
        var defaultUrls = tls ? "https://127.0.0.1:0" : "http://127.0.0.1:0";
        var pki = tls ? DeploymentCertificates.Create(Path.Combine(dataDirectory, TlsDirectoryName), ["operator", "store"]) : null;
        var (operatorTls, storeTls) = (pki?.Servers[0], pki?.Servers[1]);
        var trustedRoots = pki is null ? null : WalletTrust.Load(pki.CaCertificatePath);
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

        // The authorizer first, unless the caller runs one: the operator is configured with its
        // address and an API key made for this run.
        WebApplication? ownAuthorizer = null;
        if (authorizer is null)
        {
            var apiKey = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            ownAuthorizer = AuthorizerHost.Build(new AuthorizerOptions { DataDirectory = Path.Combine(dataDirectory, "authorizer"), ApiKeys = [apiKey], Urls = "http://127.0.0.1:0" }, Quiet);
            await ownAuthorizer.StartAsync();
            authorizer = new AuthorizerClientOptions { Url = AuthorizerHost.BoundAddress(ownAuthorizer).ToString(), ApiKey = apiKey };
        }

        // The agent before the servers whose pages name it. Until the operator listens, the agent
        // knows only where operators listen by default, and no origin may use it.
        RunningAgent? agent = null;
        if (agentReader is not null)
        {
            agent = await AgentHost.StartAsync(new AgentOptions
            {
                OperatorUrl = new Uri("http://127.0.0.1:5080/"),
                Urls = "http://127.0.0.1:0",
                TrustedRoots = trustedRoots,
            }, agentReader, Quiet, CancellationToken.None);
        }

        var operatorOptions = new OperatorOptions
        {
            DataDirectory = Path.Combine(dataDirectory, "operator"),
            CreateVaultIfMissing = true,
            Urls = operatorUrls ?? defaultUrls,
            AdminUrls = defaultUrls,
            AdminToken = AdminToken,
            TlsCertificatePath = operatorTls?.CertificatePath,
            TlsKeyPath = operatorTls?.KeyPath,
            TrustedRootsPath = pki?.CaCertificatePath,
            Authorizer = authorizer,
        };
        if (settlementTimeout is { } timeout)
        {
            // A short deadline wants a sweeper that looks often.
            operatorOptions = operatorOptions with { SettlementTimeout = timeout, SweepInterval = TimeSpan.FromMilliseconds(100) };
        }

        if (clientRateLimit is { } operatorLimit)
        {
            operatorOptions = operatorOptions with { ClientRequestsPerSecond = operatorLimit.PerSecond, ClientRequestBurst = operatorLimit.Burst };
        }

        if (agent is not null)
        {
            // The top-up pages name the agent they talk to.
            operatorOptions = operatorOptions with { AgentUrl = agent.Address };
        }

        var operatorApp = await OperatorHost.BuildAsync(operatorOptions, configure: Quiet);
        await operatorApp.StartAsync();
        var operatorUrl = operatorApp.Services.GetRequiredService<Listeners>().PublicUrls[0];

        var storeOptions = new StoreOptions
        {
            DataDirectory = Path.Combine(dataDirectory, "store"),
            MallId = mallId,
            Members = members,
            OperatorUrl = operatorUrl,
            Urls = storeUrls ?? defaultUrls,
            BillLifetime = billLifetime ?? TimeSpan.FromMinutes(15),
            TlsCertificatePath = storeTls?.CertificatePath,
            TlsKeyPath = storeTls?.KeyPath,
            TrustedRootsPath = pki?.CaCertificatePath,
            // The store owner's admin API (refunds), with the demo's loopback-only owner token.
            AdminToken = StoreAdminToken,
        };
        if (clientRateLimit is { } storeLimit)
        {
            storeOptions = storeOptions with { ClientOrdersPerSecond = storeLimit.PerSecond, ClientOrderBurst = storeLimit.Burst };
        }

        if (agent is not null)
        {
            // And so do the checkout pages.
            storeOptions = storeOptions with { AgentUrl = agent.Address };
        }

        var store = StoreHost.Build(storeOptions, Quiet);
        await store.StartAsync();
        var system = new DemoSystem(operatorApp, store, ownAuthorizer, agent, new Uri(authorizer.Url!), dataDirectory, mallId, members, pki, trustedRoots);
        await system.RegisterMallAsync();
        // The agent settles with this operator; the two origins whose pages may use it are the
        // mall's checkout and the operator's top-up.
        agent?.UseOperator(system.OperatorUrl);
        agent?.Allow(system.StoreUrl.GetLeftPart(UriPartial.Authority));
        agent?.Allow(system.OperatorUrl.GetLeftPart(UriPartial.Authority));
        return system;
    }

    /// <summary>An HTTP client for the operator (what a wallet uses); by default trusting the demo's CA in TLS mode.</summary>
    public HttpClient OperatorClient(HttpMessageHandler? handler = null) => new(handler ?? CreateHandler()) { BaseAddress = OperatorUrl };

    /// <summary>An HTTP client for the mall; by default trusting the demo's CA in TLS mode.</summary>
    public HttpClient StoreClient(HttpMessageHandler? handler = null) => new(handler ?? CreateHandler()) { BaseAddress = StoreUrl };

    /// <summary>The HTTP stack a wallet of this system uses: the wallet's own, trusting the demo's CA in TLS mode.</summary>
    public HttpMessageHandler CreateHandler() => TrustedRoots is null ? new HttpClientHandler() : WalletTrust.CreateHandler(TrustedRoots);

    /// <summary>Issues a card into a file (personalized with its diversified keys) and loads value onto it.</summary>
    public Task<EmulatedCard> IssueCardAsync(string path, Money load, long balanceMaxMinor = IssuingStation.DefaultBalanceMaxMinor) =>
        _operator.Services.GetRequiredService<CardIssuer>().IssueCardFileAsync(path, load, balanceMaxMinor);

    public async ValueTask DisposeAsync()
    {
        // The agent first: no page's payment is left half-way through the servers' stopping.
        if (Agent is not null)
        {
            await Agent.DisposeAsync();
        }

        await _store.StopAsync();
        await _operator.StopAsync();
        if (_authorizer is not null)
        {
            await _authorizer.StopAsync();
        }
        await _store.DisposeAsync();
        await _operator.DisposeAsync();
        if (_authorizer is not null)
        {
            await _authorizer.DisposeAsync();
        }
    }

    // The operator's administrator registers each member store with its published key and the
    // mall's address for completion notices, on the operator's admin listener.
    private async Task RegisterMallAsync()
    {
        using var http = new HttpClient(CreateHandler()) { BaseAddress = OperatorAdminUrl };
        http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        foreach (var registration in OperatorRegistration.For(Mall, Stores, _store.Services.GetRequiredService<MemberKeys>(), StoreUrl))
        {
            using var response = await http.PostAsJsonAsync("v1/admin/stores", registration, ProtocolJson.Options);
            response.EnsureSuccessStatusCode();
        }
    }
}

/// <summary>The test cards of the demo's credit authorizer (docs/authorizer.md), for the commands it prints.</summary>
internal static class DemoAuthorizer
{
    /// <summary>A test card the demo's authorizer approves; it takes <see cref="TestCardPin"/> and any expiry not yet passed.</summary>
    public const string ApprovedCard = "4242 4242 4242 4242";

    /// <summary>A test card the demo's authorizer declines (do_not_honor).</summary>
    public const string DeclinedCard = "4000 0000 0000 0002";

    public const string TestCardPin = "1234";
}
