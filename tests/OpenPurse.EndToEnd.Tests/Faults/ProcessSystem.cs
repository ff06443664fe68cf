using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Card;
using OpenPurse.Operator;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// The whole system as separate processes, each killable for real: an operator node
/// (openpurse-operator on SQLite or PostgreSQL, software vault), the demo mall (openpurse-store),
/// for the top-ups the credit authorizer (openpurse-authorizer, test mode), and for each purchase
/// or top-up the wallet (openpurse pay, openpurse topup, sync, transfer, cashout) with the card's
/// file. Every connection between them runs through a <see cref="Relay"/>: wallet → operator,
/// wallet → store, operator → store, store → operator (its key set, receipts and refunds), operator
/// → authorizer. Killed servers come back on the same port with the same data.
/// </summary>
internal sealed class ProcessSystem : IAsyncDisposable
{
    public const string AdminToken = "fault-matrix-admin-token";

    /// <summary>The store owner's token for the store's admin API (its refunds).</summary>
    public const string StoreAdminToken = "fault-matrix-store-admin-token";

    /// <summary>The operator's key at the authorizer.</summary>
    private const string AuthorizerApiKey = "fault-matrix-authorizer-key";

    /// <summary>
    /// How long the operator waits for the authorizer: short, so that the authorizer's time-out card
    /// (which holds its answer 30 s) costs a few seconds; long enough for a busy machine's answers.
    /// </summary>
    public static readonly TimeSpan AuthorizerTimeout = TimeSpan.FromSeconds(3);

    private readonly string _directory;
    private readonly PostgresDatabase? _postgres;
    private readonly int _operatorPort = HaProxy.FreePort();
    private readonly int _storePort = HaProxy.FreePort();
    private readonly int _operatorAdminPort = HaProxy.FreePort();
    private readonly int? _authorizerPort;
    private PartyProcess? _operator;
    private PartyProcess? _store;
    private PartyProcess? _authorizer;
    private WebApplication? _station;

    private ProcessSystem(string directory, PostgresDatabase? postgres, TimeSpan settlementTimeout, bool withAuthorizer)
    {
        _directory = directory;
        _postgres = postgres;
        _authorizerPort = withAuthorizer ? HaProxy.FreePort() : null;
        SettlementTimeout = settlementTimeout;
        Database = Operator.Registry.Database.Open(OperatorOptions, OperatorDirectory);
    }

    /// <summary>How long a settlement waits for its card before the sweeper expires it.</summary>
    public TimeSpan SettlementTimeout { get; }

    public Relay WalletToOperator { get; private set; } = null!;

    public Relay WalletToStore { get; private set; } = null!;

    public Relay OperatorToStore { get; private set; } = null!;

    /// <summary>The store's calls to the operator: its key set, the receipts it delivers, its refunds.</summary>
    public Relay StoreToOperator { get; private set; } = null!;

    /// <summary>The operator's calls to the credit authorizer; null when the system has none.</summary>
    public Relay? OperatorToAuthorizer { get; private set; }

    /// <summary>The operator's registry, read by the test for its checks.</summary>
    public Database Database { get; }

    public Uri OperatorUrl => new($"http://127.0.0.1:{_operatorPort}/");

    public Uri StoreUrl => new($"http://127.0.0.1:{_storePort}/");

    /// <summary>The operator's admin listener, where its administrator registers the stores.</summary>
    public Uri OperatorAdminUrl => new($"http://127.0.0.1:{_operatorAdminPort}/");

    private string OperatorDirectory => Path.Combine(_directory, "operator");

    private string AuthorizerDirectory => Path.Combine(_directory, "authorizer");

    private Uri AuthorizerUrl => new($"http://127.0.0.1:{_authorizerPort}/");

    private OperatorOptions OperatorOptions => new()
    {
        DataDirectory = OperatorDirectory,
        KeyVault = "software",
        DatabaseProvider = _postgres is null ? "sqlite" : "postgresql",
        ConnectionString = _postgres?.ConnectionString,
    };

    /// <summary>The operator's configuration, as environment variables.</summary>
    private Dictionary<string, string> OperatorEnvironment => new Dictionary<string, string>
    {
        ["OpenPurse__Operator__DataDirectory"] = OperatorDirectory,
        ["OpenPurse__Operator__DatabaseProvider"] = OperatorOptions.DatabaseProvider,
        ["OpenPurse__Operator__CreateVaultIfMissing"] = "true",
        ["OpenPurse__Operator__AdminToken"] = AdminToken,
        ["OpenPurse__Operator__Urls"] = $"http://127.0.0.1:{_operatorPort}",
        ["OpenPurse__Operator__AdminUrls"] = $"http://127.0.0.1:{_operatorAdminPort}",
        ["OpenPurse__Operator__SettlementTimeout"] = SettlementTimeout.ToString(),
        ["OpenPurse__Operator__SweepInterval"] = "00:00:00.200",
        // The wallets, the store and the relays all reach the operator from loopback, hundreds of
        // requests a second from one client address: far above the per-client default.
        ["OpenPurse__Operator__ClientRequestsPerSecond"] = "1000000",
        ["OpenPurse__Operator__ClientRequestBurst"] = "1000000",
        ["Logging__LogLevel__Default"] = "Warning",
    }.Concat(_postgres is null ? [] : [new("OpenPurse__Operator__ConnectionString", _postgres.ConnectionString)])
        .Concat(OperatorToAuthorizer is null ? [] :
        [
            new("OpenPurse__Operator__Authorizer__Url", OperatorToAuthorizer.Url.ToString()),
            new("OpenPurse__Operator__Authorizer__ApiKey", AuthorizerApiKey),
            new("OpenPurse__Operator__Authorizer__Timeout", AuthorizerTimeout.ToString()),
            // A top-up nobody asks for again is abandoned within seconds (the wallet's retries are 1, 2 and 4 s apart).
            new("OpenPurse__Operator__TopUpAuthorizingMax", "00:00:08"),
        ]).ToDictionary();

    private Dictionary<string, string> AuthorizerEnvironment => new()
    {
        ["Authorizer__DataDirectory"] = AuthorizerDirectory,
        ["Authorizer__Urls"] = AuthorizerUrl.ToString().TrimEnd('/'),
        ["Authorizer__ApiKeys__0"] = AuthorizerApiKey,
        ["Logging__LogLevel__Default"] = "Warning",
    };

    private Dictionary<string, string> StoreEnvironment => new()
    {
        ["Store__DataDirectory"] = Path.Combine(_directory, "store"),
        ["Store__Urls"] = $"http://127.0.0.1:{_storePort}",
        ["Store__PublicUrl"] = OperatorToStore.Url.ToString(),
        ["Store__OperatorUrl"] = StoreToOperator.Url.ToString(),
        ["Store__AdminToken"] = StoreAdminToken,
        ["Store__BillLifetime"] = "00:15:00",
        // Every wallet orders from loopback, one client address, faster than the per-client default.
        ["Store__ClientOrdersPerSecond"] = "1000000",
        ["Store__ClientOrderBurst"] = "1000000",
        ["Logging__LogLevel__Default"] = "Warning",
    };

    /// <param name="postgres">The operator's database, or null for SQLite.</param>
    /// <param name="settlementTimeout">
    /// How long a settlement waits for its card: long where the card must come back before it, short
    /// where the case waits for the sweeper to expire it (the purchase must still reach its fault first).
    /// </param>
    /// <param name="withAuthorizer">Whether a credit authorizer runs too, and the operator takes top-ups through it.</param>
    public static async Task<ProcessSystem> StartAsync(PostgresDatabase? postgres, TimeSpan settlementTimeout, bool withAuthorizer = false)
    {
        var system = new ProcessSystem(Directory.CreateTempSubdirectory("openpurse-faults-").FullName, postgres, settlementTimeout, withAuthorizer);
        try
        {
            system.WalletToOperator = await Relay.StartAsync(system.OperatorUrl);
            system.WalletToStore = await Relay.StartAsync(system.StoreUrl);
            system.OperatorToStore = await Relay.StartAsync(system.StoreUrl);
            system.StoreToOperator = await Relay.StartAsync(system.OperatorUrl);
            if (withAuthorizer)
            {
                system.OperatorToAuthorizer = await Relay.StartAsync(system.AuthorizerUrl);
                await system.StartAuthorizerAsync();
            }

            await Task.WhenAll(system.StartOperatorAsync(), system.StartStoreAsync());
            await MallRegistration.RegisterAsync(system.StoreEnvironment, system.OperatorAdminUrl, AdminToken);
            // The issuing station: the node's services on its database and vault, never serving. Cards are
            // issued in this process, as the station command would, without a program start per card.
            system._station = await OperatorHost.BuildAsync(system.OperatorOptions);
            return system;
        }
        catch
        {
            await system.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills the operator node (a crash: nothing it held in memory survives).</summary>
    public void KillOperator() => _operator?.Kill();

    /// <summary>Kills the store.</summary>
    public void KillStore() => _store?.Kill();

    /// <summary>Kills the credit authorizer.</summary>
    public void KillAuthorizer() => _authorizer?.Kill();

    /// <summary>Starts whatever was killed again, with the same data.</summary>
    public async Task ReviveAsync()
    {
        if (_operator is null || _operator.HasExited)
        {
            await StartOperatorAsync();
        }

        if (_store is null || _store.HasExited)
        {
            await StartStoreAsync();
        }

        if (_authorizerPort is not null && (_authorizer is null || _authorizer.HasExited))
        {
            await StartAuthorizerAsync();
        }
    }

    /// <summary>An issued, loaded card in a new file (the issuing station, on the operator's registry and vault).</summary>
    public async Task<string> IssueCardAsync(string name, Money load)
    {
        var path = Path.Combine(_directory, name + ".card");
        using var card = await _station!.Services.GetRequiredService<CardIssuer>().IssueCardFileAsync(path, load);
        return path;
    }

    /// <summary>The wallet paying for one article with the card in <paramref name="cardPath"/>; the caller waits for it or kills it.</summary>
    public PartyProcess StartWallet(string cardPath, string sku, SettlementProfile profile) =>
        PartyProcess.Start("openpurse",
            ["pay", "--store", WalletToStore.Url.ToString(), "--operator", WalletToOperator.Url.ToString(), "--item", sku, "--yes", "--card", cardPath,
             "--profile", profile == SettlementProfile.Lean ? "lean" : "signed"],
            new Dictionary<string, string>());

    /// <summary>
    /// The wallet topping the card in <paramref name="cardPath"/> up by <paramref name="amount"/>,
    /// charged to the authorizer's test card <paramref name="cardNumber"/> (PIN 1234), its details
    /// piped on standard input as a script gives them; the caller waits for it or kills it.
    /// </summary>
    public PartyProcess StartTopUp(string cardPath, Money amount, string cardNumber)
    {
        var wallet = PartyProcess.Start("openpurse",
            ["topup", "--operator", WalletToOperator.Url.ToString(), "--card", cardPath, "--amount", amount.ToString(), "--yes"],
            new Dictionary<string, string>());
        var expiry = DateTime.UtcNow.AddYears(3).ToString("MM/yy", System.Globalization.CultureInfo.InvariantCulture);
        wallet.Answer($"{cardNumber}\n{expiry}\n1234\n");
        return wallet;
    }

    /// <summary>The card online again: <c>openpurse sync</c>.</summary>
    public Task<(int ExitCode, string Output)> SyncAsync(string cardPath) =>
        PartyProcess.RunAsync("openpurse", SyncArguments(cardPath), new Dictionary<string, string>());

    /// <summary><c>openpurse sync</c> as a process the caller waits for or kills.</summary>
    public PartyProcess StartSync(string cardPath) => PartyProcess.Start("openpurse", SyncArguments(cardPath), new Dictionary<string, string>());

    /// <summary><c>openpurse transfer</c> of <paramref name="amount"/> from the card in <paramref name="cardPath"/> to card <paramref name="payee"/>.</summary>
    public PartyProcess StartTransfer(string cardPath, CardId payee, Money amount) =>
        PartyProcess.Start("openpurse",
            ["transfer", "--operator", WalletToOperator.Url.ToString(), "--card", cardPath, "--to", payee.Digits, "--amount", amount.ToString(), "--yes"],
            new Dictionary<string, string>());

    /// <summary><c>openpurse cashout</c> of <paramref name="amount"/> from the card in <paramref name="cardPath"/> to a test IBAN.</summary>
    public PartyProcess StartCashOut(string cardPath, Money amount) =>
        PartyProcess.Start("openpurse",
            ["cashout", "--operator", WalletToOperator.Url.ToString(), "--card", cardPath, "--iban", "DE89 3704 0044 0532 0130 00", "--holder", "Erika Mustermann",
             "--amount", amount.ToString(), "--yes"],
            new Dictionary<string, string>());

    /// <summary>
    /// The store owner refunds <paramref name="amount"/> of a paid order through the store's admin API
    /// (<c>POST /v1/admin/refunds</c>): the store signs it and asks the operator. Null status: no answer.
    /// </summary>
    public async Task<(HttpStatusCode? Status, string Body)> RefundAsync(string orderNo, string amount)
    {
        using var http = new HttpClient { BaseAddress = StoreUrl, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", StoreAdminToken);
        try
        {
            using var response = await http.PostAsJsonAsync("v1/admin/refunds", new { orderNo, amount });
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException e)
        {
            return (null, e.Message);
        }
    }

    private string[] SyncArguments(string cardPath) => ["sync", "--operator", WalletToOperator.Url.ToString(), "--card", cardPath];

    /// <summary>What the chip holds, read from its file (no process has it open).</summary>
    public static (CardId CardId, Money Balance) ReadCard(string cardPath)
    {
        using var reader = InProcessReader.Open(cardPath);
        var card = new WalletCard(reader);
        card.Select();
        var status = card.Status();
        return (status.CardId, status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur));
    }

    /// <summary>The card's settlements as the registry holds them.</summary>
    public async Task<IReadOnlyList<(string SettlementId, string OrderNo, string State, string? StoreToldAt)>> SettlementsOfAsync(CardId cardId)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, string, string?)>(
            "SELECT settlement_id, order_no, state, store_told_at FROM settlements WHERE card_id = @id ORDER BY created_at",
            new { id = cardId.Digits })];
    }

    /// <summary>The card's top-ups as the registry holds them.</summary>
    public async Task<IReadOnlyList<(string TopUpId, string State, long AmountMinor)>> TopUpsOfAsync(CardId cardId)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, long)>(
            "SELECT topup_id, state, amount_minor FROM topups WHERE card_id = @id ORDER BY created_at",
            new { id = cardId.Digits })];
    }

    /// <summary>The id of every top-up the registry holds, of any card.</summary>
    public async Task<IReadOnlyList<string>> AllTopUpIdsAsync()
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<string>("SELECT topup_id FROM topups")];
    }

    /// <summary>
    /// Every authorization the credit authorizer holds, from its own database (read only, beside the
    /// running authorizer): its word on what it approved, captured and voided, against the operator's.
    /// </summary>
    public async Task<IReadOnlyList<AuthorizerRecord>> AuthorizationsAsync()
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(AuthorizerDirectory, "authorizer.db"),
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        await connection.OpenAsync();
        return [.. await connection.QueryAsync<AuthorizerRecord>(
            """
            SELECT id AS Id, reference AS Reference, status AS Status, amount_minor AS AmountMinor,
                   captured_minor AS CapturedMinor, captured_at AS CapturedAt, voided_at AS VoidedAt
            FROM authorizations ORDER BY created_at
            """)];
    }

    /// <summary>The card's account in the operator's journal.</summary>
    public async Task<long> CardAccountAsync(CardId cardId)
    {
        await using var connection = await Database.OpenAsync();
        return await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account = @account", new { account = "card:" + cardId.Digits });
    }

    /// <summary>The store's view of an order: billed, paid or cancelled.</summary>
    public async Task<string> OrderStateAsync(string orderNo)
    {
        using var http = new HttpClient { BaseAddress = StoreUrl };
        var order = await http.GetFromJsonAsync<JsonElement>($"v1/orders/{Uri.EscapeDataString(orderNo)}");
        return order.GetProperty("state").GetString()!;
    }

    /// <summary>The refunds of a settlement as the registry holds them.</summary>
    public async Task<IReadOnlyList<(string RefundId, string State, long AmountMinor)>> RefundsOfAsync(string settlementId)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, long)>(
            "SELECT refund_id, state, amount_minor FROM refunds WHERE settlement_id = @settlementId ORDER BY created_at", new { settlementId })];
    }

    /// <summary>What the registry owes a card, took or is crediting: its card credits.</summary>
    public async Task<IReadOnlyList<(string Purpose, string SourceId, string State, long AmountMinor)>> CardCreditsOfAsync(CardId cardId)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, string, long)>(
            "SELECT purpose, source_id, state, amount_minor FROM card_credits WHERE card_id = @id ORDER BY created_at", new { id = cardId.Digits })];
    }

    /// <summary>The card's transfers (or, with <paramref name="cashOuts"/>, its cash-outs) as the registry holds them.</summary>
    public async Task<IReadOnlyList<(string Id, string State, long AmountMinor)>> DecreasesOfAsync(CardId cardId, bool cashOuts = false)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, long)>(cashOuts
            ? "SELECT cashout_id, state, amount_minor FROM cashouts WHERE card_id = @id ORDER BY created_at"
            : "SELECT transfer_id, state, amount_minor FROM transfers WHERE card_id = @id ORDER BY created_at", new { id = cardId.Digits })];
    }

    /// <summary>The journal's entries on <paramref name="account"/> under <paramref name="reference"/>.</summary>
    public async Task<IReadOnlyList<long>> EntriesAsync(string account, string reference)
    {
        await using var connection = await Database.OpenAsync();
        return [.. await connection.QueryAsync<long>(
            "SELECT amount_minor FROM journal WHERE account = @account AND reference = @reference", new { account, reference })];
    }

    /// <summary>An order's refunds as the store recorded them, from its own database (read only, beside the running store).</summary>
    public async Task<IReadOnlyList<(string RefundId, string State, long AmountMinor)>> StoreRefundsOfAsync(string orderNo)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(_directory, "store", "store.db"),
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        await connection.OpenAsync();
        return [.. await connection.QueryAsync<(string, string, long)>(
            "SELECT refund_id, state, amount_minor FROM order_refunds WHERE order_no = @orderNo ORDER BY requested_at", new { orderNo })];
    }

    /// <summary>
    /// <c>openpurse-operator reconcile</c> on the node's data, beside the running node: the ledger, then
    /// each store's signed statement against the books (asked through the operator → store relay).
    /// </summary>
    public async Task<(int ExitCode, string Report)> ReconcileWithStoresAsync()
    {
        using var report = new StringWriter();
        var exit = await ReconcileCommand.RunAsync(_station!.Services, report, CancellationToken.None);
        return (exit, report.ToString());
    }

    public Task<LedgerReport> ReconcileAsync() => new Ledger(Database).ReconcileAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        _operator?.Dispose();
        _store?.Dispose();
        _authorizer?.Dispose();
        if (_station is not null)
        {
            (_station.Services.GetRequiredService<ISecurityModule>() as IDisposable)?.Dispose();
            await _station.DisposeAsync();
        }

        foreach (var relay in new[] { WalletToOperator, WalletToStore, OperatorToStore, StoreToOperator, OperatorToAuthorizer })
        {
            if (relay is not null)
            {
                await relay.DisposeAsync();
            }
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private async Task StartOperatorAsync()
    {
        _operator?.Dispose();
        _operator = PartyProcess.Start("openpurse-operator", ["serve"], OperatorEnvironment);
        await _operator.WaitReadyAsync(new Uri(OperatorUrl, "health"), "the operator");
    }

    private async Task StartStoreAsync()
    {
        _store?.Dispose();
        _store = PartyProcess.Start("openpurse-store", ["serve"], StoreEnvironment);
        await _store.WaitReadyAsync(new Uri(StoreUrl, "v1/catalog"), "the store");
    }

    private async Task StartAuthorizerAsync()
    {
        _authorizer?.Dispose();
        _authorizer = PartyProcess.Start("openpurse-authorizer", ["serve"], AuthorizerEnvironment);
        await _authorizer.WaitReadyAsync(new Uri(AuthorizerUrl, "health"), "the credit authorizer");
    }
}
