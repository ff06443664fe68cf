using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Authorizer.Tests;

/// <summary>An authorizer on Kestrel at 127.0.0.1:0 in a temporary data directory, and a caller with its API key.</summary>
internal sealed class TestAuthorizer : IAsyncDisposable
{
    public const string ApiKey = "test-api-key-0123456789";

    /// <summary>An expiry far from any clock the tests set.</summary>
    public const string ValidExpiry = "12/49";

    private readonly bool _ownsDirectory;

    /// <summary>What every authorizer of the suite logged.</summary>
    public static LogCapture SuiteLogs { get; } = new();

    private TestAuthorizer(WebApplication app, AuthorizerOptions options, bool ownsDirectory)
    {
        App = app;
        Options = options;
        _ownsDirectory = ownsDirectory;
        Address = AuthorizerHost.BoundAddress(app);
        Http = new HttpClient { BaseAddress = Address };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public WebApplication App { get; }

    public AuthorizerOptions Options { get; }

    public Uri Address { get; }

    /// <summary>A caller with the API key.</summary>
    public HttpClient Http { get; }

    public CardKeys Keys => App.Services.GetRequiredService<CardKeys>();

    public static AuthorizerOptions OptionsFor(string dataDirectory) => new()
    {
        DataDirectory = dataDirectory,
        ApiKeys = [ApiKey],
        Urls = "http://127.0.0.1:0",
    };

    public static Task<TestAuthorizer> StartAsync(TimeProvider? time = null, LogCapture? logs = null) =>
        StartAsync(OptionsFor(Directory.CreateTempSubdirectory("openpurse-authorizer-").FullName), ownsDirectory: true, time, logs);

    public static async Task<TestAuthorizer> StartAsync(AuthorizerOptions options, bool ownsDirectory = false, TimeProvider? time = null, LogCapture? logs = null)
    {
        var app = AuthorizerHost.Build(options, builder =>
        {
            // Every line at every level goes to the suite's capture, which tests scan for card data; none to the console.
            builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Trace).AddProvider(SuiteLogs);
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
        return new TestAuthorizer(app, options, ownsDirectory);
    }

    /// <summary>Card data as a wallet makes it: fetched key, JSON, JWE.</summary>
    public async Task<string> EncryptCardAsync(string pan, string expiry = ValidExpiry, string pin = TestCards.Pin)
    {
        var keys = JsonWebKeySet.Parse(await Http.GetStringAsync(new Uri("/v1/keys", UriKind.Relative)));
        return Jwe.Encrypt(ProtocolJson.ToUtf8(new CardData(pan, expiry, pin)), keys.Keys.Single());
    }

    public static AuthorizeRequest Request(string cardData, string amount = "25.00 EUR", string reference = "topup-1") =>
        new(Money.Parse(amount), reference, cardData);

    public async Task<HttpResponseMessage> AuthorizeAsync(AuthorizeRequest request, string? idempotencyKey, CancellationToken cancellationToken = default)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/authorizations") { Content = JsonContent.Create(request, options: ProtocolJson.Options) };
        if (idempotencyKey is not null)
        {
            message.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return await Http.SendAsync(message, cancellationToken);
    }

    /// <summary>Authorizes the card for the amount with a fresh idempotency key, and reads the authorization.</summary>
    public async Task<CreditAuthorization> AuthorizeCardAsync(string pan, string amount = "25.00 EUR")
    {
        using var response = await AuthorizeAsync(Request(await EncryptCardAsync(pan), amount), Guid.NewGuid().ToString());
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return await ReadAsync<CreditAuthorization>(response);
    }

    /// <summary>Waits until an authorizer of the suite has logged its decision on <paramref name="reference"/> (a caller that gave up cannot see it).</summary>
    public static async Task WaitForDecisionAsync(string reference)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!SuiteLogs.Entries.Any(e => e.Message.Contains($" for {reference}: ", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"No decision on {reference} was logged within 60 s.");
            await Task.Delay(20);
        }
    }

    public Task<HttpResponseMessage> CaptureAsync(Guid id, string amount) =>
        Http.PostAsJsonAsync($"/v1/authorizations/{id:D}/capture", new CaptureRequest(Money.Parse(amount)), ProtocolJson.Options);

    public Task<HttpResponseMessage> VoidAsync(Guid id, string reason = "card_not_loaded") =>
        Http.PostAsJsonAsync($"/v1/authorizations/{id:D}/void", new VoidRequest(reason), ProtocolJson.Options);

    public static async Task<T> ReadAsync<T>(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<T>(ProtocolJson.Options))!;

    /// <summary>The problem's <c>code</c>, asserting the status it comes with.</summary>
    public static async Task<string> ProblemCodeOf(HttpResponseMessage response, ProblemCode expected)
    {
        Assert.Equal(expected.Status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        return problem.GetProperty("code").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        if (_ownsDirectory)
        {
            // Whatever the test did, the authorizer kept and logged no card number or PIN, and kept it private.
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            SecretsTest.AssertPrivate(Options.DataDirectory);
            await SecretsTest.AssertNoCardDataAsync(Options.DataDirectory);
            Assert.All(SuiteLogs.Entries.Select(e => e.Message), SecretsTest.AssertNoCardData);
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

/// <summary>Every log entry, for tests that check what the authorizer writes (and never writes).</summary>
internal sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Category, string Message)> Entries { get; } = new();

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
            capture.Entries.Enqueue((logLevel, category, formatter(state, exception) + (exception is null ? "" : " " + exception)));
    }
}

/// <summary>A clock the test moves by hand; its timers are the system's.</summary>
internal sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
