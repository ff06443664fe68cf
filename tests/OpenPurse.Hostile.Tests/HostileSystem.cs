using System.Data.Common;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Authorizer;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Orders;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Hostile.Tests;

/// <summary>Which server a probe goes to.</summary>
public enum Party
{
    Operator,
    Store,
    Authorizer,
}

/// <summary>
/// The system the hostile suite attacks, one per test class: the demo's operator (SQLite, software
/// vault) and mall on Kestrel on 127.0.0.1, an issued card with value, one order paid by a real
/// purchase and one billed and never presented. Probes go over real HTTP; the servers' route tables,
/// the operator's ledger and the store's orders are read in process. The servers' per-client rate
/// limits are raised far above what the suite sends from its one loopback address, so that they
/// hide no answer; <see cref="RateLimitedSystem"/> keeps them low.
/// </summary>
public class HostileSystem : IAsyncLifetime
{
    public const string StoreId = "books";
    public const string OtherStoreId = "tunes";
    public const string Sku = "book-001";

    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-hostile-").FullName;
    private DemoSystem _system = null!;
    private WebApplication _authorizer = null!;
    private InProcessReader _reader = null!;

    /// <summary>Requests per second and burst each server allows one client address.</summary>
    protected virtual (int PerSecond, int Burst) ClientRateLimit => (1_000_000, 1_000_000);

    internal EmulatedCard Card { get; private set; } = null!;

    internal HttpClient Operator { get; private set; } = null!;

    /// <summary>Every answer the servers gave the suite's clients: the purchase's, then every probe's.</summary>
    internal System.Collections.Concurrent.ConcurrentQueue<Observation> Observed { get; } = new();

    internal HttpClient Store { get; private set; } = null!;

    /// <summary>An order paid by a real purchase: its number, settlement, bill, ACN and receipt.</summary>
    internal PurchaseResult Paid { get; private set; } = null!;

    /// <summary>The paid order's signed bill: the operator refuses it as replayed, after it has read all of it.</summary>
    internal string PaidBill { get; private set; } = null!;

    /// <summary>An order billed at the store and never presented to the operator.</summary>
    internal (string OrderNo, string Bill) Billed { get; private set; }

    internal MemberKeys StoreKeys => _system.StoreServices.GetRequiredService<MemberKeys>();

    internal ISecurityModule Security => _system.OperatorServices.GetRequiredService<ISecurityModule>();

    internal static string AdminToken => DemoSystem.AdminToken;

    /// <summary>The credit authorizer's API key in the suite.</summary>
    internal const string AuthorizerApiKey = "hostile-suite-api-key-0123456789";

    /// <summary>The credit authorizer, beside the demo's parties.</summary>
    internal HttpClient Authorizer { get; private set; } = null!;

    /// <summary>An approved authorization at the authorizer, never captured or voided.</summary>
    internal Guid Approved { get; private set; }

    /// <summary>The body that made <see cref="Approved"/>, with its idempotency key.</summary>
    internal (string Body, string IdempotencyKey) ApprovedRequest { get; private set; }

    /// <summary>The card's number, as the operator knows it.</summary>
    internal CardId CardId => Card.CardId;

    public async Task InitializeAsync()
    {
        // The authorizer first: the operator's top-ups are charged through it.
        await StartAuthorizerAsync();
        _system = await DemoSystem.StartAsync(_directory, mall: true, clientRateLimit: ClientRateLimit,
            authorizer: new AuthorizerClientOptions { Url = AuthorizerHost.BoundAddress(_authorizer).ToString(), ApiKey = AuthorizerApiKey });
        Card = await _system.IssueCardAsync(Path.Combine(_directory, "card.bin"), Money.Parse("50.00 EUR"));
        _reader = new InProcessReader(Card);
        Operator = _system.OperatorClient(new AnswerRecorder(Party.Operator, admin: false, Observed, Handler()));
        Store = _system.StoreClient(new AnswerRecorder(Party.Store, admin: false, Observed, Handler()));
        OperatorAdmin = new HttpClient(new AnswerRecorder(Party.Operator, admin: true, Observed, Handler())) { BaseAddress = _system.OperatorAdminUrl };
        Paid = await new PurchaseFlow(Store, Operator, _reader, new AutoPrompt()).RunAsync(new PurchaseRequest(Sku, StoreId: StoreId));
        PaidBill = (await SqlAsync(StoreDatabase(), $"SELECT bill FROM orders WHERE order_no = '{Paid.OrderNo}'")).Single();
        using var response = await Store.PostAsync("/v1/orders", Json($$"""{"storeId":"{{StoreId}}","items":[{"sku":"{{Sku}}","quantity":1}]}"""));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var created = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Billed = (created.GetProperty("orderNo").GetString()!, created.GetProperty("bill").GetString()!);
    }

    private async Task StartAuthorizerAsync()
    {
        _authorizer = AuthorizerHost.Build(
            new AuthorizerOptions { DataDirectory = Path.Combine(_directory, "authorizer"), ApiKeys = [AuthorizerApiKey], Urls = "http://127.0.0.1:0" },
            builder => builder.Logging.SetMinimumLevel(LogLevel.Warning));
        await _authorizer.StartAsync();
        Authorizer = new HttpClient(new AnswerRecorder(Party.Authorizer, admin: false, Observed, Handler())) { BaseAddress = AuthorizerHost.BoundAddress(_authorizer) };
        var keys = OpenPurse.Protocol.Jose.JsonWebKeySet.Parse(await Authorizer.GetStringAsync(new Uri("/v1/keys", UriKind.Relative)));
        var cardData = OpenPurse.Protocol.Jose.Jwe.Encrypt(ProtocolJson.ToUtf8(new CardData("4242424242424242", "12/49", "1234")), keys.Keys.Single());
        ApprovedRequest = (JsonSerializer.Serialize(new AuthorizeRequest(Money.Parse("25.00 EUR"), "hostile-topup", cardData), ProtocolJson.Options), "hostile-approved");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/authorizations") { Content = Json(ApprovedRequest.Body) };
        request.Headers.Add("Idempotency-Key", ApprovedRequest.IdempotencyKey);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AuthorizerApiKey);
        using var answer = await Authorizer.SendAsync(request);
        Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
        Approved = JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
    }

    public async Task DisposeAsync()
    {
        Operator?.Dispose();
        OperatorAdmin?.Dispose();
        Store?.Dispose();
        Authorizer?.Dispose();
        if (_authorizer is not null)
        {
            await _authorizer.StopAsync();
            await _authorizer.DisposeAsync();
            SqliteConnection.ClearAllPools();
        }
        _reader?.Dispose();
        Card?.Dispose();
        await _system.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    // Headers go as UTF-8 bytes, so that a probe can send what a browser would not.
    private static SocketsHttpHandler Handler() => new() { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8, AllowAutoRedirect = false };

    /// <summary>A UTF-8 JSON body.</summary>
    internal static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The endpoints a server's route table holds, as "METHOD pattern" (e.g. "POST /v1/settlements/{id:guid}/completion").</summary>
    internal IReadOnlyList<string> Endpoints(Party party)
    {
        var services = Services(party);
        return
        [
            .. services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
                .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(method => $"{method} {e.RoutePattern.RawText}"))
                .Order(StringComparer.Ordinal),
        ];
    }

    internal HttpClient Client(Party party) => party switch
    {
        Party.Operator => Operator,
        Party.Store => Store,
        _ => Authorizer,
    };

    private IServiceProvider Services(Party party) => party switch
    {
        Party.Operator => _system.OperatorServices,
        Party.Store => _system.StoreServices,
        _ => _authorizer.Services,
    };

    /// <summary>The operator's admin listener.</summary>
    internal HttpClient OperatorAdmin { get; private set; } = null!;

    /// <summary>
    /// The paths of the pages a server serves (the checkout, the top-up pages, their scripts and
    /// stylesheet): endpoints for browsers, not API, which the OpenAPI documents leave out.
    /// </summary>
    internal IReadOnlyList<string> PagePaths(Party party) =>
    [
        .. Services(party).GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<OpenPurse.Hosting.PageSurface>() is not null)
            .Select(e => e.RoutePattern.RawText!)
            .Order(StringComparer.Ordinal),
    ];

    /// <summary>Whether an endpoint ("METHOD pattern") serves a page (<see cref="PagePaths"/>).</summary>
    internal bool IsPage(Party party, string endpoint) =>
        PagePaths(party).Any(path => endpoint == "GET " + path);

    /// <summary>Whether an endpoint answers on the operator's admin listener (the admin API and its OpenAPI document) rather than on the public one.</summary>
    internal bool IsAdmin(Party party, string endpoint)
    {
        var services = Services(party);
        return services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Any(method => endpoint == $"{method} {e.RoutePattern.RawText}"))
            .Any(e => e.Metadata.GetMetadata<OpenPurse.Operator.Api.AdminSurface>() is not null);
    }

    /// <summary>The OpenAPI documents of a server, read without credentials, each with whether it is served on the admin listener.</summary>
    internal async Task<IReadOnlyList<(bool Admin, ApiDocument Document)>> DocumentsAsync(Party party) => party == Party.Operator
        ? [(false, await ApiDocument.ReadAsync(Operator, "/openapi/v1.json")), (true, await ApiDocument.ReadAsync(OperatorAdmin, "/openapi/admin.json"))]
        : [(false, await ApiDocument.ReadAsync(Client(party), "/openapi/v1.json"))];

    /// <summary>A real greeting of the card for a bill: SELECT and INITIALIZE UPDATE with the bill's host challenge, base64.</summary>
    internal string Greeting(string bill)
    {
        Assert.True(_reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = _reader.Transmit(CardHostSession.InitializeUpdate(SignedMessage.HostChallengeFor(bill)));
        Assert.True(answer.IsOk, $"INITIALIZE UPDATE answered {answer}");
        return Convert.ToBase64String(answer.Data);
    }

    /// <summary>A greeting for a card sync: a host challenge and the card's answer to it, base64.</summary>
    internal (string HostChallenge, string Greeting) SyncGreeting()
    {
        var challenge = new byte[8];
        Assert.True(_reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = _reader.Transmit(CardHostSession.InitializeUpdate(challenge));
        Assert.True(answer.IsOk, $"INITIALIZE UPDATE answered {answer}");
        return (Convert.ToBase64String(challenge), Convert.ToBase64String(answer.Data));
    }

    /// <summary>
    /// What money and orders look like now: the operator's journal, card purses and cards, every
    /// settlement's state and proofs, and the ledger's own reconciliation; the store's orders and voids.
    /// </summary>
    internal async Task<Books> BooksAsync()
    {
        var report = await _system.OperatorServices.GetRequiredService<Ledger>().ReconcileAsync(CancellationToken.None);
        await using var registry = await _system.OperatorServices.GetRequiredService<Database>().OpenAsync();
        await using var orders = StoreDatabase();
        await orders.OpenAsync();
        return new Books(
            report.ToText(),
            report.IsClean,
            await RowsAsync(registry, "SELECT entry_id, account, amount_minor, currency, reference FROM journal ORDER BY entry_id, account"),
            await RowsAsync(registry, "SELECT card_id, currency, balance_minor FROM card_purses ORDER BY card_id, currency"),
            await RowsAsync(registry, "SELECT card_id, status FROM cards ORDER BY card_id"),
            await RowsAsync(registry, "SELECT settlement_id, state, completion_notice, receipt FROM settlements ORDER BY settlement_id"),
            await RowsAsync(orders, "SELECT order_no, state, settlement_id, receipt FROM orders ORDER BY order_no"),
            await RowsAsync(orders, "SELECT order_no, settlement_id FROM order_voids ORDER BY order_no"));
    }

    /// <summary>The store's order database, read-only.</summary>
    private SqliteConnection StoreDatabase() => new(new SqliteConnectionStringBuilder
    {
        DataSource = Path.Combine(_directory, "store", OrderDatabase.FileName),
        Mode = SqliteOpenMode.ReadOnly,
        Pooling = false,
    }.ToString());

    private static async Task<IReadOnlyList<string>> SqlAsync(SqliteConnection connection, string sql)
    {
        await using (connection)
        {
            await connection.OpenAsync();
            return await RowsAsync(connection, sql);
        }
    }

    private static async Task<IReadOnlyList<string>> RowsAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(string.Join('|', Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }
}

/// <summary>The system with low per-client rate limits: one request a second after a burst of twenty.</summary>
public sealed class RateLimitedSystem : HostileSystem
{
    protected override (int PerSecond, int Burst) ClientRateLimit => (1, 20);
}

/// <summary>
/// The state a hostile request must leave as it was. Settlements and orders may be added (a
/// well-formed request is answered as usual: a settlement authorized, and voided when the card's
/// next greeting shows it never ran; an order billed), but none that existed changes, and no line
/// is added to the journal.
/// </summary>
internal sealed record Books(
    string LedgerReport,
    bool LedgerClean,
    IReadOnlyList<string> Journal,
    IReadOnlyList<string> Purses,
    IReadOnlyList<string> Cards,
    IReadOnlyList<string> Settlements,
    IReadOnlyList<string> Orders,
    IReadOnlyList<string> Voids)
{
    /// <summary>Asserts that nothing moved from <paramref name="before"/> to this.</summary>
    public void AssertUnchangedSince(Books before)
    {
        Assert.True(LedgerClean, LedgerReport);
        Assert.Equal(before.Journal, Journal);
        Assert.Equal(before.Purses, Purses);
        Assert.Equal(before.Cards, Cards);
        Assert.Equal(before.Voids, Voids);
        AssertKeptAndNew(before.Settlements, Settlements, "authorized", "voided");
        AssertKeptAndNew(before.Orders, Orders, "billed");
    }

    // Rows are "id|state|...": every row before is still there as it was; a new one is in a state that moved no money.
    private static void AssertKeptAndNew(IReadOnlyList<string> before, IReadOnlyList<string> after, params string[] newStates)
    {
        Assert.Empty(before.Except(after, StringComparer.Ordinal));
        Assert.All(after.Except(before, StringComparer.Ordinal), row => Assert.Contains(row.Split('|')[1], newStates));
    }
}
