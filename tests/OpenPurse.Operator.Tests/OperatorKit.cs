using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenPurse.Card;
using OpenPurse.Operator.Issuance;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A real operator on Kestrel (127.0.0.1, free port) in a private temporary directory, a store key
/// registered through the admin API, and an issued card loaded with value: the wallet's and the
/// store's parts are played by the test, message by message. The registry is SQLite in the
/// directory, or a PostgreSQL database the kit drops when it is disposed.
/// </summary>
internal sealed class OperatorKit : IAsyncDisposable
{
    public const string AdminToken = "test-admin-token";

    /// <summary>An auditor's token, configured by its SHA-256 under the name "auditor-1".</summary>
    public const string AuditorToken = "test-auditor-token";

    private readonly string _directory = System.IO.Directory.CreateTempSubdirectory("openpurse-operator-").FullName;
    private readonly List<EmulatedCard> _moreCards = [];
    private PostgresDatabase? _postgres;
    private WebApplication _app = null!;
    private int _orderSequence;
    private bool _booksTamperedWith;

    /// <summary>The operator's public listener.</summary>
    public HttpClient Http { get; private set; } = null!;

    /// <summary>The operator's admin listener, without a token.</summary>
    public HttpClient Admin { get; private set; } = null!;

    public EcdsaSigningKey StoreKey { get; } = EcdsaSigningKey.Generate();

    public EmulatedCard Card { get; private set; } = null!;

    public CardReader Reader { get; private set; } = null!;

    public JsonWebKeySet OperatorKeys { get; private set; } = null!;

    public string Directory => _directory;

    /// <param name="loadMinor">Value loaded onto the kit's card.</param>
    /// <param name="notifyUrl">Where the store "shop" wants completion notices.</param>
    /// <param name="postgres">The registry's PostgreSQL database, which the kit then owns; null for SQLite.</param>
    /// <param name="settlementTimeout">How long a settlement waits for its card's answer before a sweep expires it; the operator's default when null.</param>
    /// <param name="sweepInterval">How often the background sweeper runs (zero: never, sweep with <see cref="SweepAsync"/>); the operator's default when null.</param>
    /// <param name="time">The operator's clock instead of the system's (e.g. a FakeTimeProvider); the kit's bills are dated by it too.</param>
    /// <param name="poolSize">On PostgreSQL: this many pooled connections, waited for one second at most.</param>
    /// <param name="admission">Settlement and card requests worked on at once, and queued; the operator's defaults when null.</param>
    /// <param name="clientRate">The per-client rate limit; when null, one far above any test's bursts.</param>
    public static async Task<OperatorKit> StartAsync(long loadMinor = 10_000, string? notifyUrl = null, PostgresDatabase? postgres = null, TimeSpan? settlementTimeout = null, TimeSpan? sweepInterval = null,
        TimeProvider? time = null, int? poolSize = null, (int InFlight, int Queue)? admission = null, (int PerSecond, int Burst)? clientRate = null,
        Func<OperatorOptions, OperatorOptions>? configure = null, Microsoft.Extensions.Logging.ILoggerProvider? logs = null)
    {
        var kit = new OperatorKit { _postgres = postgres, _settlementTimeout = settlementTimeout, _sweepInterval = sweepInterval, _time = time, _poolSize = poolSize, _admission = admission, _clientRate = clientRate, _configure = configure, _logs = logs };
        await kit.InitializeAsync(loadMinor, notifyUrl);
        return kit;
    }

    public T Service<T>()
        where T : notnull => _app.Services.GetRequiredService<T>();

    public async Task RegisterStoreAsync(string storeId, EcdsaSigningKey key, string? mallId = null, string? notifyUrl = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/admin/stores")
        {
            Content = JsonContent.Create(new
            {
                storeId,
                name = storeId,
                mallId,
                notifyUrl,
                jwks = System.Text.Json.JsonDocument.Parse(new JsonWebKeySet([key.PublicKey]).ToJson()).RootElement,
            }),
        };
        request.Headers.Authorization = new("Bearer", AdminToken);
        using var response = await Admin.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    public string Bill(Money amount, string? orderNo = null, EcdsaSigningKey? key = null, string storeId = "shop", DateTimeOffset? expiresAt = null, DateTimeOffset? issuedAt = null)
    {
        var now = Time.GetUtcNow();
        var bill = new Bill(
            orderNo ?? $"shop-{Interlocked.Increment(ref _orderSequence):D6}",
            storeId,
            null,
            amount,
            [new BillItem("ebook-1", "An e-book", 1, amount)],
            issuedAt ?? now,
            expiresAt ?? now.AddMinutes(15));
        return SignedMessage.Sign(key ?? StoreKey, bill, MessageTypes.Bill);
    }

    /// <summary>SELECT and INITIALIZE UPDATE with the bill's host challenge: the greeting for round trip 1.</summary>
    /// <param name="bill">The bill whose host challenge the card answers.</param>
    /// <param name="reader">The card's reader; the kit's card by default.</param>
    public string Greeting(string bill, CardReader? reader = null)
    {
        reader ??= Reader;
        Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = reader.Transmit(CardHostSession.InitializeUpdate(SignedMessage.HostChallengeFor(bill)));
        Assert.True(answer.IsOk);
        return Convert.ToBase64String(answer.Data);
    }

    public Task<HttpResponseMessage> StartAsync(string bill, SettlementProfile profile = SettlementProfile.Signed, string? greeting = null, CardReader? reader = null) =>
        Http.PostAsJsonAsync("/v1/settlements", new StartSettlementRequest(bill, profile, greeting ?? Greeting(bill, reader)), ProtocolJson.Options);

    public async Task<StartSettlementResponse> StartOkAsync(string bill, SettlementProfile profile = SettlementProfile.Signed, CardReader? reader = null)
    {
        using var response = await StartAsync(bill, profile, reader: reader);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
    }

    /// <summary>EXTERNAL AUTHENTICATE and DEBIT with the approval of what the bill says; the card's answer.</summary>
    public ResponseApdu RunCard(StartSettlementResponse started, string bill, Approval? approval = null, CardReader? reader = null)
    {
        reader ??= Reader;
        Assert.True(CommandApdu.TryParse(Convert.FromBase64String(started.ExternalAuthenticate), out var externalAuthenticate));
        Assert.True(CommandApdu.TryParse(Convert.FromBase64String(started.Debit), out var debit));
        Assert.Equal(StatusWord.Ok, reader.Transmit(externalAuthenticate).Status);
        var billAmount = System.Text.Json.JsonSerializer.Deserialize<Bill>(System.Buffers.Text.Base64Url.DecodeFromChars(bill.Split('.')[1]), ProtocolJson.Options)!.Amount;
        return reader.Transmit(CardHostSession.WithApproval(debit, approval ?? new Approval(billAmount, SignedMessage.DigestBytes(bill))));
    }

    public Task<HttpResponseMessage> CompleteAsync(Guid settlementId, ResponseApdu answer) =>
        Http.PostAsJsonAsync($"/v1/settlements/{settlementId}/completion", new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);

    public Money Balance(CardReader? reader = null, Currency? currency = null)
    {
        reader ??= Reader;
        currency ??= Currency.Eur;
        reader.Transmit(CardHostSession.Select());
        Assert.True(PurseStatus.TryParse(reader.Transmit(CardHostSession.GetData()).Data, out var status));
        return status.BalanceOf(currency) ?? Money.Zero(currency);
    }

    public Task LoadAsync(long minor, CardReader? reader = null) => Service<CardIssuer>().LoadAsync(reader ?? Reader, new Money(minor, Currency.Eur), CancellationToken.None);

    /// <summary>Issues one more card, with its own card file, and loads it: the reader to reach it through.</summary>
    public async Task<CardReader> IssueCardAsync(long loadMinor)
    {
        var keys = await Service<CardIssuer>().IssueAsync(CancellationToken.None);
        var card = EmulatedCard.Create(Path.Combine(_directory, $"card-{keys.CardId.Digits}.bin"), new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, 1_000_000));
        CryptographicOperations.ZeroMemory(keys.EncKey);
        CryptographicOperations.ZeroMemory(keys.MacKey);
        _moreCards.Add(card);
        var reader = new CardReader(card);
        if (loadMinor > 0)
        {
            await LoadAsync(loadMinor, reader);
        }

        return reader;
    }

    /// <summary>A card made elsewhere (a station command's file), disposed with the kit: the reader to reach it through.</summary>
    public CardReader Adopt(EmulatedCard card)
    {
        _moreCards.Add(card);
        return new CardReader(card);
    }

    public static async Task<string> CodeOf(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        Assert.StartsWith("https://openpurse.org/problems/", problem.GetProperty("type").GetString());
        return problem.GetProperty("code").GetString()!;
    }

    /// <summary>
    /// For a test that changes the books behind the operator's back: the kit does not reconcile
    /// them when it is disposed.
    /// </summary>
    public void BooksTamperedWith() => _booksTamperedWith = true;

    /// <summary>
    /// Reconciles the books and examines the card log (every test's money must balance and every
    /// card record match, whatever it did), then stops the operator and removes its data; a ledger
    /// that does not reconcile, or a mismatch, fails the test with the differences.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        var books = _booksTamperedWith ? null : await ReconcileAsync();
        // The card log too: every record the flows kept matches its transaction, and every finished transaction has its record.
        var examination = _booksTamperedWith ? null : await Service<Registry.Examination>().RunAsync(null, CancellationToken.None);
        Http.Dispose();
        Admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Card.Dispose();
        foreach (var card in _moreCards)
        {
            card.Dispose();
        }

        StoreKey.Dispose();
        System.IO.Directory.Delete(_directory, recursive: true);
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        Assert.True(books is null || books.IsClean, $"The operator's books do not reconcile after the test:\n{books?.ToText()}");
        Assert.True(examination is null || examination.Clean, $"The operator's examination finds mismatches after the test:\n{string.Join("\n", examination?.Findings.Where(f => f.Mismatch) ?? [])}");
    }

    /// <summary>
    /// Another operator node on the kit's registry and key vault (the same data directory, or the
    /// same PostgreSQL database), started on free ports; the caller disposes it before the kit.
    /// </summary>
    public async Task<OtherNode> StartOtherNodeAsync()
    {
        var app = await OperatorHost.BuildAsync(_options);
        await app.StartAsync();
        var listeners = app.Services.GetRequiredService<Api.Listeners>();
        return new OtherNode(app, new HttpClient { BaseAddress = Assert.Single(listeners.PublicUrls) }, new HttpClient { BaseAddress = Assert.Single(listeners.AdminUrls) });
    }

    private OperatorOptions _options = null!;

    private async Task InitializeAsync(long loadMinor, string? notifyUrl)
    {
        _app = await OperatorHost.BuildAsync(_options = WithOverrides(new OperatorOptions
        {
            DataDirectory = Path.Combine(_directory, "operator"),
            DatabaseProvider = _postgres is null ? "sqlite" : "postgresql",
            ConnectionString = _postgres is null || _poolSize is not { } size
                ? _postgres?.ConnectionString
                : new Npgsql.NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { MaxPoolSize = size, Timeout = 1 }.ToString(),
            CreateVaultIfMissing = true,
            Urls = "http://127.0.0.1:0",
            AdminUrls = "http://127.0.0.1:0",
            AdminToken = AdminToken,
            AdminTokens = [new AdminTokenOptions { Name = "auditor-1", Role = "auditor", Sha256 = Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(AuditorToken))) }],
        }), configure: builder =>
        {
            if (_time is not null)
            {
                builder.Services.Replace(ServiceDescriptor.Singleton(_time));
            }

            if (_logs is not null)
            {
                builder.Logging.Services.AddSingleton(_logs);
            }
        });
        if (_time is not null)
        {
            // The host registers TimeProvider.System itself: the test's clock must be the only one its services get.
            Assert.Same(_time, Assert.Single(_app.Services.GetServices<TimeProvider>()));
        }

        await _app.StartAsync();
        var listeners = Service<Api.Listeners>();
        Http = new HttpClient { BaseAddress = Assert.Single(listeners.PublicUrls) };
        Admin = new HttpClient { BaseAddress = Assert.Single(listeners.AdminUrls) };
        OperatorKeys = JsonWebKeySet.Parse(await Http.GetStringAsync("/.well-known/jwks.json"));
        await RegisterStoreAsync("shop", StoreKey, notifyUrl: notifyUrl);

        var keys = await Service<CardIssuer>().IssueAsync(CancellationToken.None);
        Card = EmulatedCard.Create(CardPath, new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, 1_000_000));
        CryptographicOperations.ZeroMemory(keys.EncKey);
        CryptographicOperations.ZeroMemory(keys.MacKey);
        Reader = new CardReader(Card);
        if (loadMinor > 0)
        {
            await LoadAsync(loadMinor);
        }
    }

    /// <summary>A second node of the kit's operator: its services, its public and its admin listener.</summary>
    internal sealed class OtherNode(WebApplication app, HttpClient http, HttpClient admin) : IAsyncDisposable
    {
        public HttpClient Http { get; } = http;

        public HttpClient Admin { get; } = admin;

        public T Service<T>()
            where T : notnull => app.Services.GetRequiredService<T>();

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            Admin.Dispose();
            var vault = app.Services.GetRequiredService<Security.ISecurityModule>() as IDisposable;
            await app.StopAsync();
            await app.DisposeAsync();
            vault?.Dispose();
        }
    }

    /// <summary>An in-test reader over the emulated card.</summary>
    internal sealed class CardReader(EmulatedCard card) : ICardReader
    {
        public string Name => "test reader";

        public CardId CardId => card.CardId;

        public ResponseApdu Transmit(CommandApdu command) => ResponseApdu.Parse(card.Transmit(command.ToBytes()));
    }

    private TimeSpan? _settlementTimeout;
    private TimeSpan? _sweepInterval;
    private TimeProvider? _time;
    private int? _poolSize;
    private (int InFlight, int Queue)? _admission;
    private (int PerSecond, int Burst)? _clientRate;

    /// <summary>The operator's clock, which dates the kit's bills too.</summary>
    public TimeProvider Time => _time ?? TimeProvider.System;

    /// <summary>The kit's card's memory file.</summary>
    public string CardPath => Path.Combine(_directory, "card.bin");

    /// <summary>Power loss and back: the card's RAM (selection, session) is gone, its memory file stays.</summary>
    /// <param name="open">How to open the file again (e.g. over a stream that tears writes); <see cref="EmulatedCard.Open(string)"/> by default.</param>
    public void PowerCycle(Func<string, EmulatedCard>? open = null)
    {
        Card.Dispose();
        Card = (open ?? EmulatedCard.Open)(CardPath);
        Reader = new CardReader(Card);
    }

    /// <summary>
    /// Issues <paramref name="count"/> more cards at once, <paramref name="parallelism"/> at a time,
    /// and loads card i with <paramref name="loadMinor"/>(i): the readers, in that order.
    /// </summary>
    public async Task<IReadOnlyList<CardReader>> IssueCardsAsync(int count, Func<int, long> loadMinor, int parallelism = 8)
    {
        ArgumentNullException.ThrowIfNull(loadMinor);
        var readers = new CardReader[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = parallelism }, async (i, cancellationToken) =>
        {
            var keys = await Service<CardIssuer>().IssueAsync(cancellationToken);
            var card = EmulatedCard.Create(Path.Combine(_directory, $"card-{keys.CardId.Digits}.bin"), new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, 1_000_000));
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
            lock (_moreCards)
            {
                _moreCards.Add(card);
            }

            readers[i] = new CardReader(card);
            if (loadMinor(i) > 0)
            {
                await Service<CardIssuer>().LoadAsync(readers[i], new Money(loadMinor(i), Currency.Eur), cancellationToken);
            }
        });
        return readers;
    }

    /// <summary>One sweep of the operator's sweeper, now: expires what is past its deadline, retells stores.</summary>
    public Task<(int Expired, int Told)> SweepAsync() =>
        _app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Settlement.SettlementSweeper>().Single().SweepAsync(CancellationToken.None);

    /// <summary>The ledger's invariants, checked by the operator's own reconciliation.</summary>
    public Task<Registry.LedgerReport> ReconcileAsync() => Service<Registry.Ledger>().ReconcileAsync(CancellationToken.None);

    /// <summary>SELECT and INITIALIZE UPDATE with a fresh host challenge: the request of a card sync.</summary>
    public CardSyncRequest SyncGreeting(CardReader? reader = null)
    {
        reader ??= Reader;
        var hostChallenge = RandomNumberGenerator.GetBytes(8);
        Assert.True(reader.Transmit(CardHostSession.Select()).IsOk);
        var answer = reader.Transmit(CardHostSession.InitializeUpdate(hostChallenge));
        Assert.True(answer.IsOk);
        return new CardSyncRequest(Convert.ToBase64String(hostChallenge), Convert.ToBase64String(answer.Data));
    }

    public Task<HttpResponseMessage> SyncAsync(CardSyncRequest request) =>
        Http.PostAsJsonAsync("/v1/cards/sync", request, ProtocolJson.Options);

    public Task<HttpResponseMessage> CompleteCreditAsync(Guid valueUpdateId, ResponseApdu answer) =>
        Http.PostAsJsonAsync($"/v1/cards/credits/{valueUpdateId}/completion", new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes())), ProtocolJson.Options);

    /// <summary>
    /// EXTERNAL AUTHENTICATE, then the value command with <paramref name="approval"/>, whatever the
    /// card answers to the first: its two answers. Unlike <see cref="RunCard"/> it asserts nothing.
    /// </summary>
    public (ResponseApdu ExternalAuthenticate, ResponseApdu Command) TryRunCard(string externalAuthenticate, string valueCommand, Approval approval, CardReader? reader = null)
    {
        reader ??= Reader;
        Assert.True(CommandApdu.TryParse(Convert.FromBase64String(externalAuthenticate), out var authenticate));
        Assert.True(CommandApdu.TryParse(Convert.FromBase64String(valueCommand), out var command));
        var authenticated = reader.Transmit(authenticate);
        return (authenticated, reader.Transmit(CardHostSession.WithApproval(command, approval)));
    }

    /// <summary>
    /// Closes the registry's idle pooled connections (PostgreSQL; nothing on SQLite). A test that sent
    /// a hundred requests at once leaves the pool at its maximum, as many connections as the test
    /// cluster allows, and the kit could then not connect to drop the database when it is disposed.
    /// </summary>
    public async Task ClosePooledConnectionsAsync()
    {
        if (_postgres is null)
        {
            return;
        }

        await using var connection = await Service<Registry.Database>().OpenAsync();
        Npgsql.NpgsqlConnection.ClearPool((Npgsql.NpgsqlConnection)connection);
    }

    // The kit's overrides of the operator's defaults.
    private Func<OperatorOptions, OperatorOptions>? _configure;

    private Microsoft.Extensions.Logging.ILoggerProvider? _logs;

    private OperatorOptions WithOverrides(OperatorOptions options) => (_configure ?? (o => o))(options) with
    {
        SettlementTimeout = _settlementTimeout ?? options.SettlementTimeout,
        SweepInterval = _sweepInterval ?? options.SweepInterval,
        RequestsInFlightMax = _admission?.InFlight ?? options.RequestsInFlightMax,
        RequestQueueMax = _admission?.Queue ?? options.RequestQueueMax,
        // The tests' bursts (hundreds of settlements at once) all come from loopback, one client
        // address; a test of the client limit names its own.
        ClientRequestsPerSecond = _clientRate?.PerSecond ?? 1_000_000,
        ClientRequestBurst = _clientRate?.Burst ?? 1_000_000,
    };
}
