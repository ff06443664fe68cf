using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Api;
using OpenPurse.Store.Keys;

namespace OpenPurse.Store.Tests;

/// <summary>A store (by default a mall of three members) on Kestrel at 127.0.0.1:0, in a temporary data directory.</summary>
internal sealed class TestStore : IAsyncDisposable
{
    public const string MallId = "test-mall";

    /// <summary>The store owner's token for the admin API.</summary>
    public const string AdminToken = "test-store-admin-token";
    public const string Books = "books";
    public const string Tunes = "tunes";
    public const string Bulk = "bulk";
    public const int BulkItems = 21;

    public static readonly IReadOnlyList<MemberStoreOptions> Members =
    [
        new(Books, "Test Books",
        [
            new("book-1", "Book One", Money.Parse("4.99 EUR"), "The text of book one."),
            new("book-2", "Book Two", Money.Parse("12.50 EUR"), "The text of book two."),
        ]),
        new(Tunes, "Test Tunes", [new("song-1", "Song One", Money.Parse("0.99 EUR"), "The lyrics of song one.")]),
        new(Bulk, "Test Bulk", [.. Enumerable.Range(1, BulkItems).Select(i => new CatalogItem(BulkSku(i), $"Bulk item {i}", Money.Parse("1.00 EUR"), $"Bulk content {i}"))]),
    ];

    private readonly bool _ownsDirectory;

    private TestStore(WebApplication app, StoreOptions options, FakeOperator fakeOperator, bool ownsDirectory)
    {
        App = app;
        Options = options;
        Operator = fakeOperator;
        _ownsDirectory = ownsDirectory;
        Address = StoreHost.BoundAddress(app);
        Http = new HttpClient { BaseAddress = Address };
    }

    public WebApplication App { get; }

    public StoreOptions Options { get; }

    public FakeOperator Operator { get; }

    public Uri Address { get; }

    public HttpClient Http { get; }

    public MemberKeys Keys => App.Services.GetRequiredService<MemberKeys>();

    public static string BulkSku(int i) => string.Create(CultureInfo.InvariantCulture, $"item-{i:D2}");

    public static StoreOptions OptionsFor(FakeOperator fakeOperator, string dataDirectory, string? mallId = MallId) => new()
    {
        DataDirectory = dataDirectory,
        MallId = mallId,
        Members = mallId is null ? [Members[0]] : Members,
        OperatorUrl = fakeOperator.Url,
        AdminToken = AdminToken,
        // Some tests place dozens of orders at once from loopback; the client limit's test sets its own.
        ClientOrdersPerSecond = 1_000_000,
        ClientOrderBurst = 1_000_000,
    };

    /// <summary>Starts a store in a new temporary directory, removed on dispose.</summary>
    public static Task<TestStore> StartAsync(FakeOperator fakeOperator, string? mallId = MallId, TimeProvider? time = null, LogCapture? logs = null) =>
        StartAsync(OptionsFor(fakeOperator, Directory.CreateTempSubdirectory("openpurse-store-").FullName, mallId), fakeOperator, ownsDirectory: true, time, logs);

    /// <summary>Starts a store on given options; the directory is the caller's.</summary>
    public static async Task<TestStore> StartAsync(StoreOptions options, FakeOperator fakeOperator, bool ownsDirectory = false, TimeProvider? time = null, LogCapture? logs = null)
    {
        var app = StoreHost.Build(options, builder =>
        {
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            if (logs is not null)
            {
                builder.Logging.AddProvider(logs);
            }

            if (time is not null)
            {
                builder.Services.AddSingleton(time);
            }
        });
        await app.StartAsync();
        return new TestStore(app, options, fakeOperator, ownsDirectory);
    }

    public async Task<PlacedOrder> PlaceOrderAsync(string storeId, params (string Sku, int Quantity)[] items)
    {
        using var response = await PostOrderAsync(storeId, items);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await ReadAsync<OrderCreatedResponse>(response);
        Assert.Equal("/v1/orders/" + created.OrderNo, response.Headers.Location?.OriginalString);
        var jwks = JsonWebKeySet.Parse(await Http.GetStringAsync(new Uri("/.well-known/jwks.json", UriKind.Relative)));
        var bill = SignedMessage.Verify<Bill>(created.Bill, jwks, MessageTypes.Bill, out var error);
        Assert.True(bill is not null, error);
        Assert.Equal(created.OrderNo, bill.OrderNo);
        return new PlacedOrder(created.OrderNo, created.Bill, bill);
    }

    public Task<HttpResponseMessage> PostOrderAsync(string storeId, params (string Sku, int Quantity)[] items) =>
        Http.PostAsJsonAsync("/v1/orders", new OrderRequest(storeId, [.. items.Select(i => new OrderRequestItem(i.Sku, i.Quantity))]), ProtocolJson.Options);

    /// <summary>A completion notice the operator would sign for the order.</summary>
    public static CompletionNotice NoticeFor(PlacedOrder order, Guid? settlementId = null) => new(
        settlementId ?? Guid.NewGuid(),
        order.OrderNo,
        order.Bill.StoreId,
        order.Bill.MallId,
        order.Bill.Amount,
        SignedMessage.Digest(order.BillJws),
        "6099********1234",
        7,
        DateTimeOffset.UtcNow);

    /// <summary>A void notice the operator would sign for the order.</summary>
    public static VoidNotice VoidFor(PlacedOrder order, Guid? settlementId = null, string reason = VoidReasons.NotRun) => new(
        settlementId ?? Guid.NewGuid(),
        order.OrderNo,
        order.Bill.StoreId,
        order.Bill.MallId,
        order.Bill.Amount,
        SignedMessage.Digest(order.BillJws),
        reason,
        DateTimeOffset.UtcNow);

    public Task<HttpResponseMessage> VoidAsOperatorAsync(string voidNotice) =>
        Http.PostAsJsonAsync("/v1/operator/voids", new VoidDelivery(voidNotice), ProtocolJson.Options);

    public Task<HttpResponseMessage> CompleteAsWalletAsync(string orderNo, string completionNotice) =>
        Http.PostAsJsonAsync($"/v1/orders/{orderNo}/completion", new CompletionDelivery(completionNotice), ProtocolJson.Options);

    public Task<HttpResponseMessage> CompleteAsOperatorAsync(string completionNotice) =>
        Http.PostAsJsonAsync("/v1/operator/completions", new CompletionDelivery(completionNotice), ProtocolJson.Options);

    /// <summary>Completes an order through the wallet's path and returns the receipt.</summary>
    public async Task<string> PayAsync(PlacedOrder order, Guid? settlementId = null)
    {
        using var response = await CompleteAsWalletAsync(order.OrderNo, Operator.Sign(NoticeFor(order, settlementId)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await ReadAsync<ReceiptDelivery>(response)).Receipt;
    }

    public async Task<string> OrderStateAsync(string orderNo)
    {
        using var document = JsonDocument.Parse(await Http.GetStringAsync(new Uri("/v1/orders/" + orderNo, UriKind.Relative)));
        return document.RootElement.GetProperty("state").GetString()!;
    }

    public async Task<HttpResponseMessage> DownloadAsync(string orderNo, string? receipt)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/orders/{orderNo}/download");
        if (receipt is not null)
        {
            request.Headers.Add(StoreApi.ReceiptHeader, receipt);
        }

        return await Http.SendAsync(request);
    }

    public static async Task<T> ReadAsync<T>(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;
    }

    /// <summary>Checks that a response is problem details with the status and code, and returns its detail.</summary>
    public static async Task<string?> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {status}, got {response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(body);
        Assert.Equal(code, document.RootElement.GetProperty("code").GetString());
        Assert.Equal(ProblemCode.TypePrefix + code, document.RootElement.GetProperty("type").GetString());
        Assert.Equal((int)status, document.RootElement.GetProperty("status").GetInt32());
        return document.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() : null;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        if (_ownsDirectory)
        {
            DeleteDirectory(Options.DataDirectory);
        }
    }

    public static void DeleteDirectory(string path)
    {
        // SQLite's pooled connections may hold the files open a little longer; clear them first.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(path, recursive: true);
    }
}

/// <summary>An order as the store answered it: number, BILL+SIG1 and the verified bill.</summary>
internal sealed record PlacedOrder(string OrderNo, string BillJws, Bill Bill);

/// <summary>Every log entry of a store, for tests that check what it reports.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    public System.Collections.Concurrent.ConcurrentQueue<(LogLevel Level, string Category, string Message)> Entries { get; } = new();

    public IEnumerable<string> Errors => Entries.Where(e => e.Level >= LogLevel.Error).Select(e => e.Message);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            capture.Entries.Enqueue((logLevel, category, formatter(state, exception)));
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>A temporary directory, removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("openpurse-store-").FullName;

    public void Dispose() => TestStore.DeleteDirectory(Path);
}
