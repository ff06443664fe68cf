using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenPurse.Wallet.Agent;
using OpenPurse.Wallet.Tests.Fakes;

namespace OpenPurse.Wallet.Tests;

/// <summary>
/// A real agent on 127.0.0.1 (a free port) with the wallet's world (<see cref="WalletKit"/>): the fake
/// store at http://store.test, the fake operator at http://operator.test, a real emulated card. The
/// store's and the operator's origins are allowed; pages are played by plain HTTP requests carrying
/// the headers a browser would send.
/// </summary>
internal sealed partial class AgentKit : IAsyncDisposable
{
    public const string StoreOrigin = "http://store.test";
    public const string OperatorOrigin = "http://operator.test";
    public const string ForeignOrigin = "http://other-shop.test";

    private readonly HttpClient _storeHttp;

    private AgentKit(WalletKit wallet, RunningAgent agent)
    {
        Wallet = wallet;
        Agent = agent;
        Http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = agent.Address };
        _storeHttp = new HttpClient(wallet.Store, disposeHandler: false) { BaseAddress = WalletKit.StoreUri };
    }

    public WalletKit Wallet { get; }

    public RunningAgent Agent { get; }

    /// <summary>A client without default headers: each request says which origin it plays.</summary>
    public HttpClient Http { get; }

    public static async Task<AgentKit> StartAsync(TimeSpan? approvalLifetime = null, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null, Func<OpenPurse.Protocol.Apdu.ICardReader, OpenPurse.Protocol.Apdu.ICardReader>? reader = null)
    {
        var wallet = new WalletKit();
        var options = new AgentOptions
        {
            OperatorUrl = WalletKit.OperatorUri,
            AllowedOrigins = [StoreOrigin],
            Urls = "http://127.0.0.1:0",
            ApprovalLifetime = approvalLifetime ?? TimeSpan.FromMinutes(5),
            HttpHandler = new RouterHandler(new Dictionary<string, HttpMessageHandler>
            {
                [WalletKit.StoreUri.Host] = wallet.Store,
                [WalletKit.OperatorUri.Host] = wallet.Operator,
            }),
        };
        var agent = await AgentHost.StartAsync(options, reader?.Invoke(wallet.Reader) ?? wallet.Reader, configure, CancellationToken.None);
        // Allowed at run time, as the demo does once the operator runs.
        agent.Allow(OperatorOrigin);
        return new AgentKit(wallet, agent);
    }

    /// <summary>A bill from the fake store, as a shop's page gets it from POST /v1/orders.</summary>
    public async Task<string> BillAsync(int quantity = 1)
    {
        using var response = await _storeHttp.PostAsJsonAsync("v1/orders", new { storeId = FakeStore.Id, items = new[] { new { sku = FakeStore.Sku, quantity } } });
        response.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("bill").GetString()!;
    }

    /// <summary>An API request as an allowed page's script sends it (Origin, the agent's header).</summary>
    public static HttpRequestMessage Api(HttpMethod method, string path, string? origin = StoreOrigin, object? json = null, bool header = true)
    {
        var request = new HttpRequestMessage(method, path);
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        if (header)
        {
            request.Headers.Add(AgentGuard.HeaderName, "1");
        }

        if (json is not null)
        {
            request.Content = JsonContent.Create(json);
        }

        return request;
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpRequestMessage request)
    {
        using (request)
        {
            using var response = await Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
        }
    }

    /// <summary>Posts the bill and returns the payment's id.</summary>
    public async Task<Guid> PayAsync(string bill, string origin = StoreOrigin, string profile = "signed")
    {
        var (status, body) = await SendAsync(Api(HttpMethod.Post, "/v1/payments", origin, new { bill, profile }));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("reading-card", body.GetProperty("state").GetString());
        var id = body.GetProperty("paymentId").GetGuid();
        Assert.Equal(new Uri(Agent.Address, $"approve/{id:D}").ToString(), body.GetProperty("approvalUrl").GetString());
        return id;
    }

    /// <summary>The payment's or top-up's state as its page polls it, until it is <paramref name="state"/> (or a later one, which fails the test).</summary>
    public async Task<JsonElement> WaitForAsync(string kind, Guid id, string state, string origin = StoreOrigin)
    {
        for (var attempt = 0; attempt < 1_500; attempt++)
        {
            var (status, body) = await SendAsync(Api(HttpMethod.Get, $"/v1/{kind}/{id:D}", origin));
            Assert.Equal(HttpStatusCode.OK, status);
            var now = body.GetProperty("state").GetString();
            if (now == state)
            {
                return body;
            }

            Assert.False(now is "completed" or "declined" or "failed", $"The {kind} ended {now} while {state} was awaited: {body}");
            await Task.Delay(20);
        }

        throw new TimeoutException($"The {kind} {id} never reached {state}.");
    }

    /// <summary>The approval page as the person's browser gets it.</summary>
    public async Task<(HttpResponseMessage Response, string Html)> PageAsync(Guid id)
    {
        var response = await Http.GetAsync($"/approve/{id:D}");
        return (response, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The form's token on the approval page.</summary>
    public async Task<string> TokenAsync(Guid id) => TokenField().Match((await PageAsync(id)).Html).Groups[1].Value;

    /// <summary>The approval form posted as the browser posts it from the agent's own page.</summary>
    public async Task<HttpResponseMessage> DecideAsync(Guid id, string decision, string? token = null, string? origin = "own", IEnumerable<KeyValuePair<string, string>>? fields = null)
    {
        token ??= await TokenAsync(id);
        var form = new List<KeyValuePair<string, string>> { new("token", token), new("decision", decision) };
        form.AddRange(fields ?? []);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/approve/{id:D}") { Content = new FormUrlEncodedContent(form) };
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin == "own" ? Agent.Address.GetLeftPart(UriPartial.Authority) : origin);
        }

        return await Http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        _storeHttp.Dispose();
        await Agent.DisposeAsync();
        Wallet.Dispose();
    }

    [GeneratedRegex("name=\"token\" value=\"([^\"]+)\"")]
    private static partial Regex TokenField();
}

/// <summary>Every log line the agent writes, at every level, with its exception.</summary>
internal sealed class RecordingLoggerProvider : Microsoft.Extensions.Logging.ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<string> lines) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
    }
}
