using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Protocol.Transport;
using OpenPurse.Store;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The tests that load the PKCS#11 module in this process run one at a time: SoftHSM2 scans its
/// tokens once per module initialization (see <see cref="SoftHsmToken"/>). They also share the
/// process's one pcscd, and one PostgreSQL cluster (<see cref="RealInfrastructure"/>). Nothing
/// else in this process loads the module or talks to pcscd, so the collection runs beside the others.
/// </summary>
[CollectionDefinition(Name)]
public sealed class SoftHsmInProcess : ICollectionFixture<RealInfrastructure>
{
    public const string Name = "SoftHSM2 in process";
}

/// <summary>
/// What the real deployments of this process share, started by the first test that asks: a
/// PostgreSQL cluster (a fresh database per deployment) and the process's one pcscd with vpcd.
/// </summary>
public sealed class RealInfrastructure : IDisposable
{
    private readonly Lazy<PcscDaemon> _pcscd = new(() => PcscDaemon.Start(PcscReader.ListReaders), LazyThreadSafetyMode.ExecutionAndPublication);

    public SharedPostgresCluster Postgres { get; } = new();

    public PcscDaemon Pcscd => _pcscd.Value;

    public void Dispose()
    {
        if (_pcscd.IsValueCreated)
        {
            _pcscd.Value.Dispose();
        }

        Postgres.Dispose();
    }
}

/// <summary>
/// The "real set" for one test: PostgreSQL, a SoftHSM2 token holding the operator's keys, a
/// deployment CA, two operator nodes as processes of their own behind HAProxy (TLS terminated
/// and re-encrypted), the mall in process on HTTPS calling the operator through the balancer, and
/// an issued card in the virtual reader of a private pcscd, reached by the wallet through PC/SC.
/// </summary>
internal sealed class RealDeployment : IDeployment
{
    /// <summary>What a real deployment needs installed.</summary>
    public static readonly string[] Needs = [Components.PostgreSql, Components.SoftHsm, Components.Pcscd, Components.Vpcd, Components.HaProxy];

    public const string AdminToken = "real-deployment-admin-token";

    /// <summary>How long pcscd may take to notice a card come or go: it polls vpcd every 400 ms.</summary>
    private const int PresenceTimeoutMs = 10_000;

    private readonly string _directory;
    private readonly List<IDisposable> _disposables = [];
    private readonly List<IAsyncDisposable> _asyncDisposables = [];
    private readonly List<OperatorNode> _nodes = [];
    private readonly Dictionary<string, TimeSpan> _startTimes = [];
    private RealInfrastructure _infrastructure = null!;
    private WebApplication? _store;
    private VpcdCardConnector? _connector;
    private ISecurityModule? _security;
    private string? _connectionString;

    private RealDeployment(string directory)
    {
        _directory = directory;
    }

    public IReadOnlyList<OperatorNode> Nodes => _nodes;

    public HaProxy Balancer { get; private set; } = null!;

    public Uri StoreUrl { get; private set; } = null!;

    public X509Certificate2Collection TrustedRoots { get; private set; } = null!;

    public EmulatedCard Card { get; private set; } = null!;

    public MemberKeys MemberKeys => _store!.Services.GetRequiredService<MemberKeys>();

    /// <summary>The token's vault, opened in this process as the issuing station opens it.</summary>
    public ISecurityModule Security => _security!;

    /// <summary>The time each part took to start, for the test's output.</summary>
    public IReadOnlyDictionary<string, TimeSpan> StartTimes => _startTimes;

    public static async Task<RealDeployment> StartAsync(RealInfrastructure infrastructure, DeploymentOptions options, int nodeCount = 2)
    {
        Components.Require(Needs);
        var deployment = new RealDeployment(Directory.CreateTempSubdirectory("openpurse-real-").FullName) { _infrastructure = infrastructure };
        try
        {
            await deployment.StartPartsAsync(options, nodeCount);
            return deployment;
        }
        catch (Exception e)
        {
            try
            {
                await deployment.DisposeAsync();
            }
            catch (Exception cleanup)
            {
                throw new AggregateException("The deployment did not start, nor clean up.", e, cleanup);
            }

            throw;
        }
    }

    /// <summary>A client to the balancer trusting the deployment's CA, optionally through <paramref name="outer"/> and without connection reuse.</summary>
    public HttpClient OperatorClient(DelegatingHandler? outer = null, bool reuseConnections = true) =>
        new(Handler(outer, reuseConnections)) { BaseAddress = Balancer.Url };

    HttpClient IDeployment.OperatorClient(DelegatingHandler? through) => OperatorClient(through);

    public HttpClient StoreClient(DelegatingHandler? through = null) => new(Handler(through, reuseConnections: true)) { BaseAddress = StoreUrl };

    public Task<Operator.Registry.LedgerReport> ReconcileAsync()
    {
        var options = new OperatorOptions { DataDirectory = _directory, DatabaseProvider = "postgresql", ConnectionString = _connectionString };
        return new Operator.Registry.Ledger(Operator.Registry.Database.Open(options, _directory)).ReconcileAsync(CancellationToken.None);
    }

    public ICardReader OpenCardReader() => PcscReader.Open(PcscDaemon.ReaderName);

    /// <summary>One purchase by the wallet over PC/SC and HTTPS.</summary>
    public async Task<PurchaseResult> BuyAsync(string sku, string storeId, SettlementProfile profile, HttpClient? operatorApi = null)
    {
        using var store = StoreClient();
        using var ownOperator = operatorApi is null ? OperatorClient() : null;
        using var reader = PcscReader.Open(PcscDaemon.ReaderName);
        return await new PurchaseFlow(store, operatorApi ?? ownOperator!, reader, new AutoPrompt()).RunAsync(new PurchaseRequest(sku, StoreId: storeId, Profile: profile));
    }

    /// <summary>The card's euro balance, read through PC/SC (SELECT, GET DATA).</summary>
    public static Money Balance()
    {
        using var reader = PcscReader.Open(PcscDaemon.ReaderName);
        if (!reader.Transmit(CardHostSession.Select()).IsOk)
        {
            throw new InvalidOperationException("SELECT failed.");
        }

        var answer = reader.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur);
    }

    /// <summary>The settlement's state as the operator tells it through the balancer.</summary>
    public async Task<string> SettlementStateAsync(Guid settlementId)
    {
        using var http = OperatorClient();
        return await EndToEndKit.SettlementStateAsync(http, MemberKeys, settlementId)
            ?? throw new InvalidOperationException($"No settlement {settlementId} of a member store.");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            PullCard();
        }
        finally
        {
            await DisposeServersAsync();
        }
    }

    private void PullCard()
    {
        if (_connector is not null)
        {
            _connector.Pull();
            // The next deployment's card must not meet this one's state: wait until pcscd sees the slot empty.
            Await(() =>
            {
                try
                {
                    using var reader = PcscReader.Open(PcscDaemon.ReaderName);
                    return false;
                }
                catch (WalletException e) when (e.Code == "card.not_found")
                {
                    return true;
                }
            }, "PC/SC to see the slot empty");
            _connector.Dispose();
        }
    }

    private async Task DisposeServersAsync()
    {
        if (_store is not null)
        {
            await _store.StopAsync();
            await _store.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            node.Dispose();
        }

        Balancer?.Dispose();
        (_security as IDisposable)?.Dispose();
        Card?.Dispose();
        for (var i = _asyncDisposables.Count - 1; i >= 0; i--)
        {
            await _asyncDisposables[i].DisposeAsync();
        }

        for (var i = _disposables.Count - 1; i >= 0; i--)
        {
            _disposables[i].Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static void Await(Func<bool> condition, string what, Func<string>? state = null)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.ElapsedMilliseconds < PresenceTimeoutMs)
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (Exception e) when (e is WalletException or CardRemovedException or PcscException)
            {
                last = e; // Not yet: pcscd has not polled the slot since it changed.
            }

            Thread.Sleep(50);
        }

        throw new TimeoutException($"Waited {PresenceTimeoutMs} ms for {what} (last: {last?.Message ?? "none"}; {state?.Invoke()}).");
    }

    private static void Quiet(WebApplicationBuilder builder) =>
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
        });

    private HttpMessageHandler Handler(DelegatingHandler? outer, bool reuseConnections)
    {
        var inner = Protocol.Transport.TrustedRoots.CreateHandler(TrustedRoots);
        if (!reuseConnections)
        {
            // A new connection (and so a new balancing decision) for every request.
            inner.PooledConnectionLifetime = TimeSpan.Zero;
        }

        if (outer is null)
        {
            return inner;
        }

        outer.InnerHandler = inner;
        return outer;
    }

    private async Task StartPartsAsync(DeploymentOptions options, int nodeCount)
    {
        var clock = Stopwatch.StartNew();
        void Lap(string part)
        {
            _startTimes[part] = clock.Elapsed;
            clock.Restart();
        }

        // PostgreSQL: one database for every node and the issuing station.
        var database = await _infrastructure.Postgres.CreateDatabaseAsync();
        _asyncDisposables.Add(database);
        _connectionString = database.ConnectionString;
        Lap("postgresql");

        // SoftHSM2: a token, then the operator's keys in it (what `vault init` does).
        var token = SoftHsmToken.Create();
        _disposables.Add(token);
        var pkcs11 = new Pkcs11Options { Library = SoftHsmToken.Library, TokenLabel = token.Label, PinEnvironmentVariable = token.PinEnvironmentVariable };
        var vaultOptions = new OperatorOptions { DataDirectory = _directory, KeyVault = "pkcs11", Pkcs11 = pkcs11 };
        KeyVaults.Initialize(vaultOptions, _directory);
        _security = KeyVaults.Open(vaultOptions, _directory);
        Lap("softhsm");

        // The deployment's CA and server certificates.
        var names = Enumerable.Range(1, nodeCount).Select(i => $"operator-{i}").Concat(["balancer", "store"]).ToArray();
        var pki = DeploymentCertificates.Create(Path.Combine(_directory, "tls"), names);
        TrustedRoots = Wallet.Http.WalletTrust.Load(pki.CaCertificatePath);
        Lap("certificates");

        // The issuing station: same database and token, never started; it issues and loads the card.
        var station = await OperatorHost.BuildAsync(
            new OperatorOptions
            {
                DataDirectory = Path.Combine(_directory, "station"),
                DatabaseProvider = "postgresql",
                ConnectionString = database.ConnectionString,
                KeyVault = "pkcs11",
                Pkcs11 = pkcs11,
                Urls = "http://127.0.0.1:0",
            },
            configure: Quiet);
        // The host registers the vault as an instance, which the container does not dispose: we do.
        using (var vault = (IDisposable)station.Services.GetRequiredService<ISecurityModule>())
        await using (station)
        {
            Card = await station.Services.GetRequiredService<CardIssuer>().IssueCardFileAsync(Path.Combine(_directory, "card.bin"), options.Load);
        }

        Lap("issuing station");

        // The operator nodes, started together with the same configuration but their own certificate.
        using (var probe = Protocol.Transport.TrustedRoots.CreateHandler(TrustedRoots))
        {
            var starts = Enumerable.Range(0, nodeCount).Select(i => StartNodeAsync(() => OperatorNode.StartAsync(
                new Dictionary<string, string>
                {
                    ["DataDirectory"] = Path.Combine(_directory, $"node-{i + 1}"),
                    ["DatabaseProvider"] = "postgresql",
                    ["ConnectionString"] = database.ConnectionString,
                    ["KeyVault"] = "pkcs11",
                    ["Pkcs11:Library"] = pkcs11.Library,
                    ["Pkcs11:TokenLabel"] = pkcs11.TokenLabel,
                    ["Pkcs11:PinEnvironmentVariable"] = pkcs11.PinEnvironmentVariable,
                    ["TlsCertificatePath"] = pki.Servers[i].CertificatePath,
                    ["TlsKeyPath"] = pki.Servers[i].KeyPath,
                    ["TrustedRootsPath"] = pki.CaCertificatePath,
                    ["AdminToken"] = AdminToken,
                    ["SettlementTimeout"] = (options.SettlementTimeout ?? TimeSpan.FromMinutes(10)).ToString(),
                    ["SweepInterval"] = options.SettlementTimeout is null ? "00:00:05" : "00:00:00.100",
                },
                token.Environment,
                "https",
                probe))).ToArray();
            try
            {
                _nodes.AddRange(await Task.WhenAll(starts));
            }
            catch
            {
                _nodes.AddRange(starts.Where(s => s.IsCompletedSuccessfully).Select(s => s.Result));
                throw;
            }
        }

        Lap("operator nodes");

        var balancer = pki.Servers[nodeCount];
        // HAProxy 2.6's verifyhost matches DNS names only, not IP addresses: name the nodes "localhost",
        // which their certificates carry too (HAProxy still connects to 127.0.0.1).
        Balancer = HaProxy.Start([.. _nodes.Select(n => new UriBuilder(n.Url) { Host = "localhost" }.Uri)], balancer.CertificatePath, balancer.KeyPath, pki.CaCertificatePath);
        Lap("haproxy");

        // The mall (or one store), on HTTPS, calling the operator through the balancer.
        var storeTls = pki.Servers[nodeCount + 1];
        var mallId = options.Mall ? DemoSystem.MallId : null;
        IReadOnlyList<MemberStoreOptions> members = options.Mall ? DemoSystem.Members : [DemoSystem.Members[0]];
        _store = StoreHost.Build(
            new StoreOptions
            {
                DataDirectory = Path.Combine(_directory, "store"),
                MallId = mallId,
                Members = members,
                OperatorUrl = Balancer.Url,
                BillLifetime = options.BillLifetime,
                Urls = "https://127.0.0.1:0",
                TlsCertificatePath = storeTls.CertificatePath,
                TlsKeyPath = storeTls.KeyPath,
                TrustedRootsPath = pki.CaCertificatePath,
            },
            Quiet);
        await _store.StartAsync();
        StoreUrl = new Uri(_store.Urls.First());
        await RegisterStoresAsync(mallId, members);
        Lap("store");

        // The card into the private pcscd's virtual reader.
        var pcscd = _infrastructure.Pcscd;
        CardId? seen = null;
        _connector = VpcdCardConnector.Attach(Card, new NetworkStream(pcscd.ConnectSlot(), ownsSocket: true));
        Await(() =>
        {
            using var reader = PcscReader.Open(PcscDaemon.ReaderName);
            var card = new WalletCard(reader);
            card.Select();
            seen = card.Status().CardId;
            return seen == Card.CardId;
        }, "the card to answer through PC/SC", () => $"the reader shows card {seen}, not {Card.CardId}");
        Lap("card in reader");
    }

    // SoftHSM2 scans its token directory once, at C_Initialize, and skips a token whose files another
    // process (this one, which just made the keys) holds locked at that moment: the node then finds
    // no token by its label. Started again a moment later, it does (seen once in a loaded test run).
    private static async Task<OperatorNode> StartNodeAsync(Func<Task<OperatorNode>> start)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await start();
            }
            catch (InvalidOperationException e) when (attempt < 3 && e.Message.Contains("No token labelled", StringComparison.Ordinal))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300 * attempt));
            }
        }
    }

    // The operator's administrator registers each member store, on the first node's admin listener
    // (the balancer fronts the public API only).
    private async Task RegisterStoresAsync(string? mallId, IEnumerable<MemberStoreOptions> members)
    {
        using var http = new HttpClient(Handler(null, reuseConnections: true)) { BaseAddress = _nodes[0].AdminUrl };
        http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        foreach (var registration in OperatorRegistration.For(mallId, members, MemberKeys, StoreUrl))
        {
            using var response = await http.PostAsJsonAsync(new Uri("v1/admin/stores", UriKind.Relative), registration, ProtocolJson.Options);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"Registering {registration.StoreId} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
        }
    }
}
