using OpenPurse.Authorizer.Api;
using OpenPurse.Authorizer.Authorizations;
using OpenPurse.Authorizer.Cards;
using OpenPurse.Hosting;
using OpenPurse.Storage;

namespace OpenPurse.Authorizer;

/// <summary>Builds the credit authorizer's web application: its key, authorizations, captures and voids.</summary>
public static partial class AuthorizerHost
{
    /// <summary>The service name its traces and metrics carry.</summary>
    public const string ServiceName = "openpurse-authorizer";

    /// <summary>Its own meter and activity source.</summary>
    public const string MeterName = "OpenPurse.Authorizer";

    /// <summary>How long a stopping authorizer waits for requests in flight (a held time-out card's among them) before it ends them.</summary>
    internal static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Checks the options, loads or makes the keys, opens the database and builds the application.
    /// Start it with <c>StartAsync</c>; the bound address is then <see cref="BoundAddress"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid, or <see cref="AuthorizerOptions.Urls"/> names a non-loopback address.</exception>
    /// <exception cref="InvalidOperationException">A key file is open to group or others or is not a key, or the database is from a newer version.</exception>
    public static WebApplication Build(AuthorizerOptions options) => Build(options, configure: null);

    /// <summary>As <see cref="Build(AuthorizerOptions)"/>, letting tests adjust services (a clock, logging) before the build.</summary>
    internal static WebApplication Build(AuthorizerOptions options, Action<WebApplicationBuilder>? configure)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.DataDirectory, nameof(options));
        var urls = LoopbackUrls(options.Urls);
        // Bad keys are refused before anything is made on disk.
        ApiKeys.From(options);
        PrivateFiles.CreateDirectory(options.DataDirectory);
        var database = new AuthorizationDatabase(options.DataDirectory);
        database.Initialize();
        var keys = CardKeys.LoadOrCreate(options.DataDirectory);
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
            {
                ApplicationName = typeof(AuthorizerHost).Assembly.GetName().Name,
                ContentRootPath = AppContext.BaseDirectory,
                Args = [],
            });
            builder.AddServerTelemetry(ServiceName, MeterName);
            builder.WebHost.UseUrls(urls);
            ServerTls.ConfigureKestrel(builder.WebHost, "the authorizer", urls, options.TlsCertificatePath, options.TlsKeyPath);
            builder.WebHost.ConfigureKestrel(RequestLimits.Configure);
            OneLineConsoleFormatter.AddTo(builder.Logging);

            var services = builder.Services;
            services.AddSingleton(options);
            services.AddSingleton(database);
            // A factory registration, so that the container disposes the keys with the application.
            services.AddSingleton(_ => keys);
            services.AddSingleton(TimeProvider.System);
            services.AddSingleton<AuthorizationDesk>();
            services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
            services.AddCodedProblemDetails();
            services.ConfigureHttpJsonOptions(json => Protocol.Messages.ProtocolJson.Configure(json.SerializerOptions));
            services.AddApiDocument(ApiDocuments.Public, "OpenPurse credit authorizer", _ => true);
            services.AddApiKeys(options);
            configure?.Invoke(builder);

            var app = builder.Build();
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            app.UseRequestLimits();
            app.UseRouting();
            app.UseRoutesOnly();
            app.UseAuthentication();
            app.UseAuthorization();
            app.MapAuthorizerApi();
            app.MapGet("/health", async (AuthorizationDatabase db, CancellationToken ct) =>
            {
                await db.PingAsync(ct).ConfigureAwait(false);
                return TypedResults.Text("ok");
            }).AllowAnonymous().WithName("GetAuthorizerHealth").WithSummary("Whether the authorizer answers and its database opens.")
                .Produces(StatusCodes.Status200OK, contentType: "text/plain").Refuses();
            app.Lifetime.ApplicationStarted.Register(() =>
            {
                var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthorizerHost).FullName!);
                var urls = string.Join(' ', app.Urls);
                LogStarted(logger, keys.PublicKey.Kid!, keys.Generated ? "generated" : "loaded", options.DataDirectory, options.ApiKeys.Count, urls);
                if (options.ApiKeys.Count == 0)
                {
                    LogNoApiKeys(logger);
                }
            });
            return app;
        }
        catch
        {
            keys.Dispose();
            throw;
        }
    }

    /// <summary>The address the application listens on, once started.</summary>
    /// <exception cref="InvalidOperationException">The application has not started.</exception>
    internal static Uri BoundAddress(WebApplication app) => ServerAddresses.Bound(app, "authorizer");

    /// <summary>The authorizer's URLs: loopback only (<see cref="ServerAddresses.LoopbackOnly"/>).</summary>
    internal static string[] LoopbackUrls(string? urls) => ServerAddresses.LoopbackOnly(urls, "authorizer");

    [LoggerMessage(Level = LogLevel.Warning, Message = "No API keys are configured (Authorizer:ApiKeys): every authorization call is refused with 401")]
    private static partial void LogNoApiKeys(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorizer started: encryption key {KeyId} ({KeyOrigin}), data in {DataDirectory}, {ApiKeyCount} API key(s), listening on {Urls}")]
    private static partial void LogStarted(ILogger logger, string keyId, string keyOrigin, string dataDirectory, int apiKeyCount, string urls);
}
