using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace OpenPurse.Hosting;

/// <summary>
/// What both servers log, count and trace, set up once (docs/operations.md, "Logs, metrics and
/// traces"): quiet per-request logging by default, the server's meter with the refusals counter,
/// ASP.NET Core's and HttpClient's metrics and spans continuing the caller's W3C trace context,
/// a Prometheus scrape endpoint, and OTLP export only when an endpoint is configured.
/// </summary>
internal static class ServerTelemetry
{
    /// <summary>Where the Prometheus scrape endpoint answers.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>The standard OpenTelemetry setting (environment variable or configuration key) that turns OTLP export on.</summary>
    public const string OtlpEndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>
    /// Logging defaults beneath every other configuration source, so that appsettings.json, the
    /// environment and the command line still override them: ASP.NET Core's per-request lines
    /// (request started and finished, endpoint executing, result written) and HttpClient's per-call
    /// lines are information-level, one or more for every health check a balancer makes, and
    /// drown what the servers themselves say.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> LoggingDefaults { get; } = new Dictionary<string, string?>(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Warning",
    };

    /// <summary>
    /// Sets up a server's logging defaults, meter, traces and metrics. Call once on the builder,
    /// before any configuration an embedding host adds.
    /// </summary>
    /// <param name="builder">The server's builder.</param>
    /// <param name="serviceName">The service name traces and metrics carry (<c>openpurse-operator</c>).</param>
    /// <param name="meterName">The server's own meter and activity source (<c>OpenPurse.Operator</c>).</param>
    public static WebApplicationBuilder AddServerTelemetry(this WebApplicationBuilder builder, string serviceName, string meterName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = LoggingDefaults });
        builder.Services.AddSingleton(services => new ServerMeter(services.GetRequiredService<IMeterFactory>(), meterName));
        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointSetting]);
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName))
            .WithTracing(tracing =>
            {
                tracing.AddSource(meterName)
                    // Health checks and scrapes come every few seconds and tell nothing a trace would.
                    .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = context => !IsRoutine(context.Request.Path))
                    .AddHttpClientInstrumentation();
                if (otlp)
                {
                    tracing.AddOtlpExporter();
                }
            })
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(meterName)
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    // Every scrape counts afresh: a cached answer would show a scraper (or a test) old counts.
                    .AddPrometheusExporter(prometheus => prometheus.ScrapeResponseCacheDurationMilliseconds = 0);
                if (otlp)
                {
                    metrics.AddOtlpExporter();
                }
            });
        return builder;
    }

    /// <summary>
    /// The Prometheus scrape, <c>GET</c> <see cref="MetricsPath"/>; the server declares who may call
    /// it. The exporter's middleware runs behind a route handler of ours, so that the scrape is
    /// described in the server's OpenAPI document like every other endpoint.
    /// </summary>
    /// <param name="endpoints">The server's routes.</param>
    /// <param name="allowed">Whether this client may scrape; the others find nothing there (404, as for any unknown path).</param>
    public static RouteHandlerBuilder MapMetrics(this IEndpointRouteBuilder endpoints, Func<HttpContext, bool>? allowed = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var scrape = endpoints.CreateApplicationBuilder().UseOpenTelemetryPrometheusScrapingEndpoint(_ => true).Build();
        return endpoints.MapGet(MetricsPath, async Task<Results<EmptyHttpResult, NotFound>> (HttpContext context) =>
            {
                if (allowed is not null && !allowed(context))
                {
                    return TypedResults.NotFound();
                }

                await scrape(context).ConfigureAwait(false);
                return TypedResults.Empty;
            })
            .WithName("GetMetrics")
            .WithSummary("The server's metrics in the Prometheus text format (docs/operations.md, \"Logs, metrics and traces\").")
            .Produces(StatusCodes.Status200OK, contentType: "text/plain")
            .Refuses(OpenPurse.Protocol.Messages.ProblemCode.RequestNotFound);
    }

    private static bool IsRoutine(PathString path) =>
        path.StartsWithSegments("/health", StringComparison.Ordinal) || path.StartsWithSegments(MetricsPath, StringComparison.Ordinal);
}

/// <summary>
/// A server's own meter (<c>OpenPurse.Operator</c>, <c>OpenPurse.Store</c>), made by the host's
/// meter factory so that it lives and ends with the host, and the instrument both servers share.
/// </summary>
internal sealed class ServerMeter
{
    public ServerMeter(IMeterFactory factory, string name)
    {
        ArgumentNullException.ThrowIfNull(factory);
        Meter = factory.Create(name);
        Refusals = Meter.CreateCounter<long>("openpurse.refusals", "{refusal}", "Requests answered with problem details, by code and HTTP status.");
    }

    /// <summary>Where the server makes its own instruments.</summary>
    public Meter Meter { get; }

    /// <summary>Counted where every problem answer is written (<see cref="Problems"/>).</summary>
    public Counter<long> Refusals { get; }

    /// <summary>Counts one refusal.</summary>
    public void Refused(string code, int status) =>
        Refusals.Add(1, new KeyValuePair<string, object?>("code", code), new KeyValuePair<string, object?>("status", status));
}
