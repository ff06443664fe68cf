using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenPurse.Operator;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Load;

/// <summary>
/// What a load run buys from, each party a process of its own as in production: operator nodes
/// (the built openpurse-operator on SQLite, or on a private PostgreSQL cluster, or on a highly
/// available one of Patroni and etcd, several nodes behind HAProxy), a
/// mall of member stores (openpurse-store; its admin API takes the owner's refunds), for a
/// workload with top-ups the credit authorizer (openpurse-authorizer, test mode), and the cards,
/// issued and loaded by the operator's issuing station into files in a private temporary directory
/// that is deleted afterwards.
/// </summary>
internal sealed class LoadSystem : IAsyncDisposable
{
    private const string AdminToken = "load-admin-token";

    private const string AuthorizerApiKey = "load-authorizer-api-key";

    /// <summary>The store owner's token for the mall's admin API (Store:AdminToken): the refunds are the owner's.</summary>
    public const string StoreAdminToken = "load-store-admin-token";

    /// <summary>What each member store sells: one article, so that every purchase is the same work.</summary>
    public static readonly Money Price = Money.Parse("0.10 EUR");

    private readonly string _directory;
    private readonly List<PartyProcess> _nodes = [];
    private PostgresCluster? _postgres;
    private PatroniCluster? _patroni;
    private HaProxy? _balancer;
    private PartyProcess? _store;
    private PartyProcess? _authorizer;
    private Uri? _authorizerUrl;
    private OperatorOptions? _operatorOptions;
    private int? _poolSize;

    private LoadSystem(string directory) => _directory = directory;

    /// <summary>Where wallets and stores reach the operator: the node, or the balancer in front of the nodes.</summary>
    public Uri OperatorUrl { get; private set; } = null!;

    public Uri StoreUrl { get; private set; } = null!;

    /// <summary>The operator nodes' process ids, for their memory.</summary>
    public IReadOnlyList<int> OperatorProcesses => [.. _nodes.Select(node => node.Id)];

    /// <summary>The mall's process id.</summary>
    public int StoreProcess => _store?.Id ?? throw new InvalidOperationException("The store did not start.");

    /// <summary>The highly available cluster the registry is on (<c>--database ha</c>), or null.</summary>
    public PatroniCluster? Cluster => _patroni;

    /// <summary>The first node's admin listener (the balancer fronts the public API only).</summary>
    public Uri AdminUrl { get; private set; } = null!;

    /// <summary>The operator's admin token, for the admin API.</summary>
    public static string OperatorAdminToken => AdminToken;

    /// <summary>
    /// The PostgreSQL servers' processes (postmasters and backends), or none on SQLite. On the HA
    /// cluster every member's that runs now: a member killed meanwhile no longer counts.
    /// </summary>
    public IEnumerable<int> DatabaseProcesses() => _patroni is not null
        ? _patroni.Members.Select(member => member.PostmasterId()).OfType<int>().SelectMany(Descendants)
        : _postgres is null ? [] : Descendants(_postgres.ProcessId);

    /// <summary>The first node's start-up: from its process start to its first answered request.</summary>
    public TimeSpan OperatorStartup { get; private set; }

    /// <summary>The member stores' ids and their one article each.</summary>
    public IReadOnlyList<(string StoreId, string Sku)> Articles { get; private set; } = [];

    /// <summary>The issued cards' files.</summary>
    public IReadOnlyList<string> CardFiles { get; private set; } = [];

    /// <summary>Starts the parties, registers the stores and issues the cards.</summary>
    /// <param name="database">sqlite, postgresql or ha.</param>
    /// <param name="nodes">Operator nodes; more than one (PostgreSQL only, see Program's checks) puts HAProxy in front.</param>
    /// <param name="stores">Member stores of the mall.</param>
    /// <param name="cards">Cards to issue.</param>
    /// <param name="load">What each card is loaded with.</param>
    /// <param name="log">Where the steps are told.</param>
    /// <param name="withAuthorizer">Whether the credit authorizer runs too, for top-ups.</param>
    public static async Task<LoadSystem> StartAsync(string database, int nodes, int stores, int cards, Money load, Action<string> log, bool withAuthorizer = false)
    {
        var system = new LoadSystem(Directory.CreateTempSubdirectory("openpurse-load-").FullName);
        try
        {
            if (withAuthorizer)
            {
                await system.StartAuthorizerAsync(log);
            }

            await system.StartPartiesAsync(database, nodes, stores, cards, load, log);
            return system;
        }
        catch
        {
            await system.DisposeAsync();
            throw;
        }
    }

    /// <summary>The operator's ledger check, as <c>openpurse-operator reconcile</c> makes it.</summary>
    public Task<LedgerReport> ReconcileAsync()
    {
        var options = _operatorOptions ?? throw new InvalidOperationException("The system did not start.");
        return new Ledger(Database.Open(options, options.DataDirectory)).ReconcileAsync(CancellationToken.None);
    }

    /// <summary>
    /// The operator's careful examination, as <c>openpurse-operator examine</c> makes it: every card
    /// log record against its transaction, each card's chain and balance, the ledger, and every
    /// store's signed statement of its paid orders against the completed settlements.
    /// </summary>
    public async Task<ExaminationReport> ExamineAsync()
    {
        var options = _operatorOptions ?? throw new InvalidOperationException("The system did not start.");
        var station = await OperatorHost.BuildAsync(options with { CreateVaultIfMissing = false }, configure: builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        await using (station)
        {
            using var vault = station.Services.GetService<Operator.Security.ISecurityModule>() as IDisposable;
            return await station.Services.GetRequiredService<Examination>().RunAsync(null, CancellationToken.None);
        }
    }

    /// <summary>The registry the nodes share (on the HA cluster, whichever member is primary now), for the checks after a run.</summary>
    public Database OpenRegistry()
    {
        var options = _operatorOptions ?? throw new InvalidOperationException("The system did not start.");
        return Database.Open(options, options.DataDirectory);
    }

    public async ValueTask DisposeAsync()
    {
        _store?.Dispose();
        _authorizer?.Dispose();
        foreach (var node in _nodes)
        {
            node.Dispose();
        }

        _balancer?.Dispose();
        _postgres?.Dispose();
        _patroni?.Dispose();
        await Task.Yield();
        Directory.Delete(_directory, recursive: true);
    }

    // A process and everything it forked (on Linux, from /proc).
    private static IEnumerable<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && TryParent(pid) is { } parent)
            {
                (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(pid);
            }
        }

        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var pid))
        {
            yield return pid;
            foreach (var child in children.GetValueOrDefault(pid, []))
            {
                pending.Push(child);
            }
        }
    }

    private static int? TryParent(int pid)
    {
        try
        {
            // "pid (comm) state ppid …": the name may hold spaces, so count from its closing parenthesis.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    // The credit authorizer in test mode: its approved test card charges every top-up.
    private async Task StartAuthorizerAsync(Action<string> log)
    {
        log("Starting the credit authorizer");
        var port = HaProxy.FreePort();
        _authorizerUrl = new Uri($"http://127.0.0.1:{port}/");
        _authorizer = PartyProcess.Start("openpurse-authorizer", ["serve"], new Dictionary<string, string>
        {
            ["Authorizer__DataDirectory"] = Path.Combine(_directory, "authorizer"),
            ["Authorizer__Urls"] = $"http://127.0.0.1:{port}",
            ["Authorizer__ApiKeys__0"] = AuthorizerApiKey,
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__OpenPurse"] = "Warning",
        });
        await _authorizer.WaitReadyAsync(new Uri(_authorizerUrl, "health"), "the credit authorizer");
    }

    private async Task StartPartiesAsync(string database, int nodes, int stores, int cards, Money load, Action<string> log)
    {
        string? connectionString = null;
        if (database == "postgresql")
        {
            log("Starting a private PostgreSQL cluster");
            _postgres = PostgresCluster.Start();
            var created = await _postgres.CreateDatabaseAsync();
            // The nodes' pools together stay within the server's max_connections (100), and each
            // node admits fewer requests at once than its pool has connections (the sweeper needs one too).
            _poolSize = 90 / nodes;
            connectionString = new NpgsqlConnectionStringBuilder(created.ConnectionString) { MaxPoolSize = 90 / nodes }.ToString();
        }
        else if (database == "ha")
        {
            log("Starting a private PostgreSQL HA cluster (Patroni, etcd; a primary and two standbys, one synchronous)");
            _patroni = PatroniCluster.Start();
            var created = await _patroni.CreateDatabaseAsync();
            // As on one server (max_connections 100), with room left for Patroni's own sessions.
            _poolSize = 80 / nodes;
            connectionString = new NpgsqlConnectionStringBuilder(created.ConnectionString) { MaxPoolSize = _poolSize.Value }.ToString();
        }

        var operatorOptions = new OperatorOptions
        {
            DataDirectory = Path.Combine(_directory, "operator"),
            // The HA cluster is PostgreSQL to the operator: a connection string with every member's address.
            DatabaseProvider = database == "ha" ? "postgresql" : database,
            ConnectionString = connectionString,
            CreateVaultIfMissing = true,
        };

        _operatorOptions = operatorOptions;

        // The issuing station on the registry the nodes will use: the vault is made here, once.
        log($"Issuing {cards} cards with {load} each");
        CardFiles = await IssueCardsAsync(operatorOptions, cards, load);

        var ports = Enumerable.Range(0, nodes).Select(_ => HaProxy.FreePort()).ToArray();
        var adminPorts = Enumerable.Range(0, nodes).Select(_ => HaProxy.FreePort()).ToArray();
        var storePort = HaProxy.FreePort();
        log(nodes == 1 ? "Starting the operator" : $"Starting {nodes} operator nodes behind HAProxy");
        foreach (var (port, adminPort) in ports.Zip(adminPorts))
        {
            var node = PartyProcess.Start("openpurse-operator", ["serve"], OperatorEnvironment(operatorOptions, port, adminPort));
            _nodes.Add(node);
            var startup = await node.WaitReadyAsync(new Uri($"http://127.0.0.1:{port}/health"), "the operator");
            if (_nodes.Count == 1)
            {
                OperatorStartup = startup;
            }
        }

        if (nodes > 1)
        {
            _balancer = HaProxy.Start([.. ports.Select(port => new Uri($"http://127.0.0.1:{port}/"))]);
            OperatorUrl = _balancer.Url;
        }
        else
        {
            OperatorUrl = new Uri($"http://127.0.0.1:{ports[0]}/");
        }

        log($"Starting the mall with {stores} member stores");
        Articles = [.. Enumerable.Range(1, stores).Select(i => ($"store-{i:D3}", $"item-{i:D3}"))];
        var storeEnvironment = StoreEnvironment(storePort);
        _store = PartyProcess.Start("openpurse-store", ["serve"], storeEnvironment);
        StoreUrl = new Uri($"http://127.0.0.1:{storePort}/");
        await _store.WaitReadyAsync(new Uri(StoreUrl, "v1/catalog"), "the store");
        // On the first node's admin listener: the balancer fronts the public API only.
        AdminUrl = new Uri($"http://127.0.0.1:{adminPorts[0]}/");
        await MallRegistration.RegisterAsync(storeEnvironment, AdminUrl, AdminToken);
    }

    private async Task<IReadOnlyList<string>> IssueCardsAsync(OperatorOptions options, int count, Money load)
    {
        var station = await OperatorHost.BuildAsync(options, configure: builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        await using (station)
        {
            using var vault = station.Services.GetRequiredService<Operator.Security.ISecurityModule>() as IDisposable;
            var issuer = station.Services.GetRequiredService<CardIssuer>();
            var paths = new List<string>(count);
            for (var i = 0; i < count; i++)
            {
                var path = Path.Combine(_directory, $"card-{i:D4}.card");
                // At least the limit the operator's top-ups assume of every card, so that a card topped up before it bought anything takes the credit.
                using var card = await issuer.IssueCardFileAsync(path, load, balanceMaxMinor: Math.Max(load.MinorUnits, IssuingStation.DefaultBalanceMaxMinor));
                paths.Add(path);
            }

            return paths;
        }
    }

    private Dictionary<string, string> OperatorEnvironment(OperatorOptions options, int port, int adminPort)
    {
        var environment = new Dictionary<string, string>
        {
            ["OpenPurse__Operator__DataDirectory"] = options.DataDirectory,
            ["OpenPurse__Operator__DatabaseProvider"] = options.DatabaseProvider,
            ["OpenPurse__Operator__AdminToken"] = AdminToken,
            ["OpenPurse__Operator__Urls"] = $"http://127.0.0.1:{port}",
            ["OpenPurse__Operator__AdminUrls"] = $"http://127.0.0.1:{adminPort}",
            // Production logging would write a line per settlement; the load measures the settlement, not the console.
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__OpenPurse"] = "Warning",
            // Every simulated wallet is on loopback (or behind HAProxy): one client address making
            // hundreds of requests a second, which the per-client default would answer 429.
            ["OpenPurse__Operator__ClientRequestsPerSecond"] = "1000000",
            ["OpenPurse__Operator__ClientRequestBurst"] = "1000000",
        };
        if (options.ConnectionString is { } connectionString && _poolSize is { } pool)
        {
            environment["OpenPurse__Operator__ConnectionString"] = connectionString;
            environment["OpenPurse__Operator__RequestsInFlightMax"] = Math.Min(64, pool - 4).ToString(CultureInfo.InvariantCulture);
        }

        if (_authorizerUrl is not null)
        {
            environment["OpenPurse__Operator__Authorizer__Url"] = _authorizerUrl.ToString();
            environment["OpenPurse__Operator__Authorizer__ApiKey"] = AuthorizerApiKey;
        }

        return environment;
    }

    private Dictionary<string, string> StoreEnvironment(int storePort)
    {
        var environment = new Dictionary<string, string>
        {
            ["Store__DataDirectory"] = Path.Combine(_directory, "store"),
            ["Store__MallId"] = "load-mall",
            ["Store__Urls"] = $"http://127.0.0.1:{storePort}",
            ["Store__OperatorUrl"] = OperatorUrl.ToString(),
            ["Store__BillLifetime"] = "00:15:00",
            ["Store__AdminToken"] = StoreAdminToken,
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__OpenPurse"] = "Warning",
            // Every simulated wallet orders from loopback: one client address, hundreds of orders a second.
            ["Store__ClientOrdersPerSecond"] = "1000000",
            ["Store__ClientOrderBurst"] = "1000000",
        };
        for (var i = 0; i < Articles.Count; i++)
        {
            var (storeId, sku) = Articles[i];
            var member = $"Store__Members__{i.ToString(CultureInfo.InvariantCulture)}__";
            environment[member + "StoreId"] = storeId;
            environment[member + "Name"] = $"Load Store {i + 1}";
            environment[member + "Catalog__0__Sku"] = sku;
            environment[member + "Catalog__0__Title"] = $"Article {i + 1}";
            environment[member + "Catalog__0__Price"] = Price.ToString();
            environment[member + "Catalog__0__Content"] = $"The goods of article {i + 1}.";
        }

        return environment;
    }
}
