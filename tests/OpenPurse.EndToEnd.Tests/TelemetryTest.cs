using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using OpenPurse.Demo;
using OpenPurse.Operator;
using OpenPurse.Protocol;
using OpenPurse.Store;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The test process's meters and activity sources see every server the process hosts: the tests
/// that count what one purchase produced run alone, so that no other test's purchase is counted.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TelemetryRunsAlone
{
    public const string Name = "Telemetry";
}

/// <summary>
/// What a node logs, counts and traces (docs/operations.md, "Logs, metrics and traces"): a
/// purchase in the metrics of both servers' /metrics, one trace across wallet, store and operator,
/// health checks that write no information-level line, start-up lines that name what the node uses.
/// </summary>
[Collection(TelemetryRunsAlone.Name)]
public sealed class TelemetryTest(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-telemetry-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Purchase_CountedInOperatorAndStoreMetrics_WithRefusalsByCodeAndRequestDurations()
    {
        await using var system = await DemoSystem.StartAsync(_directory);
        using var card = await system.IssueCardAsync(Path.Combine(_directory, "card.bin"), Money.Parse("20.00 EUR"));
        using var admin = new HttpClient { BaseAddress = system.OperatorAdminUrl };
        using var store = system.StoreClient();
        using var operatorClient = system.OperatorClient();

        var operatorBefore = await ScrapeAsync(admin);
        var storeBefore = await ScrapeAsync(store);
        using (var reader = new InProcessReader(card))
        {
            var result = await new PurchaseFlow(store, operatorClient, reader, new AutoPrompt()).RunAsync(new PurchaseRequest("book-001", StoreId: "books"));
            Assert.NotNull(result.Receipt);
        }

        // A refused start: its code, as the answer names it, is counted once.
        using var refused = await operatorClient.PostAsync("/v1/settlements", new StringContent("""{"bill":"not.a.bill","profile":"signed","greeting":"AA=="}""", Encoding.UTF8, "application/json"));
        Assert.False(refused.IsSuccessStatusCode);
        var code = System.Text.Json.JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("code").GetString()!;

        var operatorAfter = await ScrapeAsync(admin);
        var storeAfter = await ScrapeAsync(store);
        output.WriteLine(operatorAfter);
        Assert.Equal(1, Delta(operatorBefore, operatorAfter, "openpurse_operator_settlements_total", ("state", "authorized")));
        Assert.Equal(1, Delta(operatorBefore, operatorAfter, "openpurse_operator_settlements_total", ("state", "completed")));
        Assert.Equal(1, Delta(operatorBefore, operatorAfter, "openpurse_refusals_total", ("code", code), ("status", ((int)refused.StatusCode).ToString(CultureInfo.InvariantCulture))));
        Assert.Equal(1, Delta(storeBefore, storeAfter, "openpurse_store_orders_billed_total", ("store", "books")));
        Assert.Equal(1, Delta(storeBefore, storeAfter, "openpurse_store_orders_paid_total", ("store", "books")));
        Assert.True(Sum(operatorAfter, "http_server_request_duration_seconds_count", ("http_route", "/v1/settlements/")) >= 2, "round trip 1 and the refused start have durations");
        Assert.True(Sum(storeAfter, "http_server_request_duration_seconds_count", ("http_route", "/v1/orders")) >= 1, "the order has a duration");

        // Not on the public listener: it answers there as any unknown path.
        using var onPublic = await operatorClient.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, onPublic.StatusCode);
    }

    [Fact]
    public async Task Purchase_WalletStoreAndOperatorSpans_ShareOneTraceId()
    {
        var stopped = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is WalletTrace.SourceName or "Microsoft.AspNetCore" or "System.Net.Http",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Add,
        };
        ActivitySource.AddActivityListener(listener);
        await using var system = await DemoSystem.StartAsync(_directory);
        using var card = await system.IssueCardAsync(Path.Combine(_directory, "card.bin"), Money.Parse("20.00 EUR"));
        using var store = system.StoreClient();
        using var operatorClient = system.OperatorClient();
        var storePort = system.StoreUrl.Port;
        var operatorPort = system.OperatorUrl.Port;

        ActivityTraceId traceId;
        using (var reader = new InProcessReader(card))
        {
            var result = await new PurchaseFlow(store, operatorClient, reader, new AutoPrompt()).RunAsync(new PurchaseRequest("book-001", StoreId: "books"));
            Assert.NotNull(result.Receipt);
            traceId = Assert.Single(stopped, a => a.Source.Name == WalletTrace.SourceName && a.DisplayName == "wallet pay").TraceId;
        }

        var inTrace = stopped.Where(a => a.TraceId == traceId).ToList();
        foreach (var activity in inTrace)
        {
            output.WriteLine($"{activity.Source.Name} {activity.DisplayName} {activity.GetTagItem("url.path")} {activity.GetTagItem("server.port")}");
        }

        var served = inTrace.Where(a => a.Source.Name == "Microsoft.AspNetCore").ToList();
        Assert.Contains(served, a => PortOf(a) == storePort && PathOf(a).StartsWith("/v1/orders", StringComparison.Ordinal));
        Assert.Contains(served, a => PortOf(a) == operatorPort && PathOf(a).StartsWith("/v1/settlements", StringComparison.Ordinal));
        // The operator's notice to the store, made while it served the wallet's round trip 2.
        Assert.Contains(served, a => PortOf(a) == storePort && PathOf(a) == "/v1/operator/completions");
    }

    [Fact]
    public async Task HealthChecks_WriteNoInformationLines_StartUpLinesNameWhatTheNodesUse()
    {
        var operatorLog = new CapturingLoggerProvider();
        var operatorOptions = new OperatorOptions
        {
            DataDirectory = Path.Combine(_directory, "operator"),
            CreateVaultIfMissing = true,
            Urls = "http://127.0.0.1:0",
            AdminUrls = "http://127.0.0.1:0",
            SweepInterval = TimeSpan.Zero,
        };
        await using var operatorNode = await OperatorHost.BuildAsync(operatorOptions, configure: builder => builder.Logging.AddProvider(operatorLog));
        await operatorNode.StartAsync();
        var storeLog = new CapturingLoggerProvider();
        var storeOptions = new StoreOptions
        {
            DataDirectory = Path.Combine(_directory, "store"),
            MallId = DemoSystem.MallId,
            Members = DemoSystem.Members,
            OperatorUrl = new Uri("http://127.0.0.1:1"),
        };
        await using var storeNode = StoreHost.Build(storeOptions, builder => builder.Logging.AddProvider(storeLog));
        await storeNode.StartAsync();

        var started = Assert.Single(operatorLog.Lines, line => line.Message.StartsWith("Operator node started", StringComparison.Ordinal));
        Assert.Contains("database sqlite " + Path.Combine(operatorOptions.DataDirectory, "operator.db"), started.Message, StringComparison.Ordinal);
        Assert.Contains("key vault software " + Path.Combine(operatorOptions.DataDirectory, "vault"), started.Message, StringComparison.Ordinal);
        Assert.Contains("signing key " + operatorNode.Services.GetRequiredService<OpenPurse.Operator.Security.ISecurityModule>().OperatorKey.KeyId, started.Message, StringComparison.Ordinal);
        Assert.Matches(@"public http://127\.0\.0\.1:\d+, admin http://127\.0\.0\.1:\d+$", started.Message);
        var storeStarted = Assert.Single(storeLog.Lines, line => line.Message.StartsWith("Store started", StringComparison.Ordinal));
        var keys = storeNode.Services.GetRequiredService<OpenPurse.Store.Keys.MemberKeys>();
        Assert.Contains($"books (kid {keys.For("books").KeyId}, generated), tunes (kid {keys.For("tunes").KeyId}, generated)", storeStarted.Message, StringComparison.Ordinal);
        Assert.Contains("data in " + storeOptions.DataDirectory, storeStarted.Message, StringComparison.Ordinal);
        Assert.Matches(@"listening on http://127\.0\.0\.1:\d+$", storeStarted.Message);
        output.WriteLine(started.Message);
        output.WriteLine(storeStarted.Message);

        var operatorUrl = operatorNode.Services.GetRequiredService<OpenPurse.Operator.Api.Listeners>().PublicUrls[0];
        var storeUrl = StoreHost.BoundAddress(storeNode);
        operatorLog.Clear();
        storeLog.Clear();
        using var http = new HttpClient();
        for (var i = 0; i < 20; i++)
        {
            using var operatorHealth = await http.GetAsync(new Uri(operatorUrl, "/health"));
            Assert.Equal("ok", await operatorHealth.Content.ReadAsStringAsync());
            using var storeHealth = await http.GetAsync(new Uri(storeUrl, "/health"));
            Assert.Equal("ok", await storeHealth.Content.ReadAsStringAsync());
        }

        Assert.DoesNotContain(operatorLog.Lines, line => line.Level >= LogLevel.Information);
        Assert.DoesNotContain(storeLog.Lines, line => line.Level >= LogLevel.Information);
    }

    [Fact]
    public void DatabaseOf_PostgreSqlConnectionString_NamesWhereButNeverThePassword()
    {
        var options = new OperatorOptions
        {
            DataDirectory = _directory,
            DatabaseProvider = "postgresql",
            ConnectionString = "Host=db.internal;Port=5433;Database=openpurse;Username=operator;Password=s3cret-pa55;SSL Mode=Require",
        };

        var described = OperatorTelemetry.DatabaseOf(options, _directory);

        Assert.Equal("postgresql host=db.internal port=5433 database=openpurse user=operator", described);
        Assert.DoesNotContain("s3cret", OperatorTelemetry.DatabaseOf(options with { DatabaseProvider = "sqlite", ConnectionString = "Data Source=/x/operator.db;Password=s3cret" }, _directory), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConsoleFormatter_OneLineByDefault_JsonWhenConfigured()
    {
        var options = new OperatorOptions { DataDirectory = Path.Combine(_directory, "operator"), CreateVaultIfMissing = true, Urls = "http://127.0.0.1:0", AdminUrls = "" };
        await using (var plain = await OperatorHost.BuildAsync(options))
        {
            Assert.Equal("openpurse", plain.Services.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue.FormatterName);
        }

        await using var json = await OperatorHost.BuildAsync(options, ["--Logging:Console:FormatterName=json"]);
        Assert.Equal("json", json.Services.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue.FormatterName);
    }

    [Fact]
    public async Task StoreMetrics_ClientNotInMetricsClients_NotFound()
    {
        var options = new StoreOptions
        {
            DataDirectory = Path.Combine(_directory, "store"),
            Members = [DemoSystem.Members[0]],
            OperatorUrl = new Uri("http://127.0.0.1:1"),
            MetricsClients = [IPAddress.Parse("192.0.2.7")],
        };
        await using var store = StoreHost.Build(options, builder => builder.Logging.ClearProviders());
        await store.StartAsync();
        using var http = new HttpClient { BaseAddress = StoreHost.BoundAddress(store) };

        using var scrape = await http.GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.NotFound, scrape.StatusCode);
        Assert.Contains("\"request.not_found\"", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static async Task<string> ScrapeAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return text;
    }

    private static double Delta(string before, string after, string name, params (string Key, string Value)[] labels) =>
        Sum(after, name, labels) - Sum(before, name, labels);

    /// <summary>The sum of a metric's samples in Prometheus text that carry every one of the labels.</summary>
    private static double Sum(string scrape, string name, params (string Key, string Value)[] labels)
    {
        double total = 0;
        foreach (var line in scrape.Split('\n'))
        {
            if (!(line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal))
                || labels.Any(label => !line.Contains($"{label.Key}=\"{label.Value}\"", StringComparison.Ordinal)))
            {
                continue;
            }

            var value = line[(line.LastIndexOf('}') is var brace and >= 0 ? brace + 1 : name.Length)..].Trim().Split(' ')[0];
            total += double.Parse(value, CultureInfo.InvariantCulture);
        }

        return total;
    }

    private static int? PortOf(Activity activity) => activity.GetTagItem("server.port") switch
    {
        int port => port,
        long port => (int)port,
        string text when int.TryParse(text, CultureInfo.InvariantCulture, out var port) => port,
        _ => null,
    };

    private static string PathOf(Activity activity) => activity.GetTagItem("url.path") as string ?? "";

    private sealed record LogLine(string Category, LogLevel Level, string Message);

    /// <summary>Every line the node logs, at any level its filters let through.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<LogLine> _lines = new();

        public IReadOnlyList<LogLine> Lines => [.. _lines];

        public void Clear() => _lines.Clear();

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<LogLine> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue(new LogLine(category, logLevel, formatter(state, exception)));
        }
    }
}
