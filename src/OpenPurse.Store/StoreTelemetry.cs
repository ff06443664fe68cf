using System.Diagnostics.Metrics;
using System.Net;
using OpenPurse.Hosting;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store;

/// <summary>
/// The store's own metrics (meter <c>OpenPurse.Store</c>, docs/operations.md): orders billed, paid and
/// cancelled, by member store. Latency and refusals come from ASP.NET Core's and the shared
/// instruments (<see cref="ServerTelemetry"/>).
/// </summary>
internal sealed class StoreMetrics(ServerMeter meter)
{
    /// <summary>The store's meter and activity source.</summary>
    public const string MeterName = "OpenPurse.Store";

    /// <summary>The service name its traces and metrics carry.</summary>
    public const string ServiceName = "openpurse-store";

    private readonly Counter<long> _billed = meter.Meter.CreateCounter<long>(
        "openpurse.store.orders.billed", "{order}", "Orders placed and billed (BILL+SIG1), by member store.");

    private readonly Counter<long> _paid = meter.Meter.CreateCounter<long>(
        "openpurse.store.orders.paid", "{order}", "Orders recorded as paid by a verified completion notice (SIG3), by member store; a repeated notice is not counted again.");

    private readonly Counter<long> _voided = meter.Meter.CreateCounter<long>(
        "openpurse.store.orders.voided", "{order}", "Orders cancelled by the operator's void notice, by member store.");

    public void Billed(string storeId) => _billed.Add(1, Store(storeId));

    public void Paid(string storeId) => _paid.Add(1, Store(storeId));

    public void Voided(string storeId) => _voided.Add(1, Store(storeId));

    private static KeyValuePair<string, object?> Store(string storeId) => new("store", storeId);
}

/// <summary>
/// The store's logs, traces and metrics: the shared set-up (<see cref="ServerTelemetry"/>), its own
/// instruments, <c>/health</c>, the scrape endpoint for the addresses in
/// <see cref="StoreOptions.MetricsClients"/>, and the start-up line.
/// </summary>
internal static partial class StoreTelemetry
{
    /// <summary>Logging defaults, traces, metrics and the store's instruments.</summary>
    public static WebApplicationBuilder AddStoreTelemetry(this WebApplicationBuilder builder)
    {
        builder.AddServerTelemetry(StoreMetrics.ServiceName, StoreMetrics.MeterName);
        builder.Services.AddSingleton<StoreMetrics>();
        return builder;
    }

    /// <summary><c>/health</c>, <c>/metrics</c>, and the start-up line once the listener is bound.</summary>
    public static WebApplication MapStoreTelemetry(this WebApplication app, StoreOptions options, StoreDirectory directory, MemberKeys keys)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        // For a load balancer or a service manager: the store answers and its order database opens.
        app.MapGet("/health", async (OrderDatabase database, CancellationToken ct) =>
        {
            await database.PingAsync(ct).ConfigureAwait(false);
            return Results.Text("ok");
        }).AllowAnonymous().WithName("GetStoreHealth").WithSummary("Whether the store answers and its order database opens.")
            .Produces(StatusCodes.Status200OK, contentType: "text/plain").Refuses();

        // Counts only, no order's content; still, only the configured scrapers (loopback by default)
        // see it, and anyone else finds nothing there (404, as for any unknown path).
        var scrapers = options.MetricsClients.Select(Canonical).ToHashSet();
        app.MapMetrics(context => context.Connection.RemoteIpAddress is { } client && scrapers.Contains(Canonical(client))).AllowAnonymous();

        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(StoreHost).FullName!);
            var stores = string.Join(", ", directory.Members.Select(store =>
                $"{store.StoreId} (kid {keys.For(store.StoreId).KeyId}, {(keys.Generated.Contains(store.StoreId) ? "generated" : "loaded")})"));
            var urls = string.Join(' ', app.Urls);
            LogStarted(logger, directory.MallId ?? "none", options.DataDirectory, stores, urls);
        });
        return app;
    }

    /// <summary>An IPv4 client over an IPv6 socket (::ffff:a.b.c.d) is the IPv4 address.</summary>
    private static IPAddress Canonical(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Store started: mall {MallId}, data in {DataDirectory}, stores {Stores}, listening on {Urls}")]
    private static partial void LogStarted(ILogger logger, string mallId, string dataDirectory, string stores, string urls);
}
