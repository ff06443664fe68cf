using OpenPurse.Hosting;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;
using OpenPurse.Store.Api;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;
using OpenPurse.Store.Orders;

namespace OpenPurse.Store;

/// <summary>Builds the store's web application: catalog, bills (SIG1), completions (SIG3) and receipts (SIG4), downloads, and the checkout page.</summary>
public static partial class StoreHost
{
    /// <summary>How long a stopping store waits for requests in flight before it ends them.</summary>
    internal static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Checks the options, loads or makes the member stores' keys, opens the order database and
    /// builds the application. Start it with <c>StartAsync</c>; the bound address is then in
    /// <c>app.Urls</c>.
    /// </summary>
    /// <param name="options">The store's options.</param>
    /// <exception cref="ArgumentException">The options are invalid, <see cref="StoreOptions.Urls"/> names a non-loopback address, or an https URL has no certificate.</exception>
    /// <exception cref="InvalidOperationException">A key file is open to group or others or is not a key, a TLS or trusted-roots file is not what it should be, or the database is from a newer version.</exception>
    public static WebApplication Build(StoreOptions options) => Build(options, configure: null);

    /// <summary>As <see cref="Build(StoreOptions)"/>, letting tests and the demo adjust services (a clock, logging) before the build.</summary>
    internal static WebApplication Build(StoreOptions options, Action<WebApplicationBuilder>? configure)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = StoreDirectory.Create(options);
        var urls = LoopbackUrls(options.Urls);
        if (options.OperatorUrl is not { IsAbsoluteUri: true } operatorUrl || (operatorUrl.Scheme != Uri.UriSchemeHttp && operatorUrl.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException("The operator's URL must be an absolute http or https URL.", nameof(options));
        }

        var agentOrigin = Pages.AgentOrigin(options.AgentUrl)
            ?? throw new ArgumentException("The wallet agent's URL (Store:AgentUrl) must be an http URL on a loopback address or an https URL, without a path.", nameof(options));

        if (options.BillLifetime <= TimeSpan.Zero || options.BillLifetime > TimeSpan.FromDays(1))
        {
            throw new ArgumentException("A bill lives more than zero and at most one day.", nameof(options));
        }

        if (options.ClientOrdersPerSecond < 1 || options.ClientOrderBurst < 1)
        {
            throw new ArgumentException("ClientOrdersPerSecond and ClientOrderBurst are at least 1.", nameof(options));
        }

        ArgumentException.ThrowIfNullOrEmpty(options.DataDirectory, nameof(options));
        PrivateFiles.CreateDirectory(options.DataDirectory);
        var database = new OrderDatabase(options.DataDirectory);
        database.Initialize();

        var keys = MemberKeys.LoadOrCreate(options.DataDirectory, directory.Members.Select(m => m.StoreId));
        try
        {
            var trustedRoots = ServerTls.LoadTrustedRoots(options.TrustedRootsPath);
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
            {
                ApplicationName = typeof(StoreHost).Assembly.GetName().Name,
                ContentRootPath = AppContext.BaseDirectory,
                Args = [],
            });
            builder.AddStoreTelemetry();
            builder.WebHost.UseUrls(urls);
            ServerTls.ConfigureKestrel(builder.WebHost, "the store", urls, options.TlsCertificatePath, options.TlsKeyPath);
            builder.WebHost.ConfigureKestrel(RequestLimits.Configure);
            OneLineConsoleFormatter.AddTo(builder.Logging);

            var services = builder.Services;
            services.AddSingleton(options);
            services.AddSingleton(directory);
            services.AddSingleton(database);
            // A factory registration, so that the container disposes the keys with the application.
            services.AddSingleton(_ => keys);
            services.AddSingleton(TimeProvider.System);
            // SIGTERM or SIGINT: requests in flight finish (or are ended) within seconds, not the host's default half minute.
            services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
            var operatorHttp = services.AddHttpClient(OperatorClient.HttpClientName, http =>
            {
                http.BaseAddress = OperatorClient.BaseAddressFor(options.OperatorUrl);
                http.Timeout = OperatorClient.RequestTimeout;
                http.MaxResponseContentBufferSize = OperatorClient.ResponseLengthMax;
            });
            if (trustedRoots is not null)
            {
                // An operator with a certificate from the deployment's CA; the system's roots still count.
                operatorHttp.ConfigurePrimaryHttpMessageHandler(() => TrustedRoots.CreateHandler(trustedRoots));
            }

            services.AddSingleton<OperatorClient>();
            services.AddSingleton<OperatorKeys>();
            services.AddSingleton<Checkout>();
            services.AddSingleton<CompletionDesk>();
            services.AddSingleton<StatementDesk>();
            services.AddSingleton<RefundDesk>();
            services.AddCodedProblemDetails();
            // Answers are written as every OpenPurse message is (camelCase, amounts as minor units, …).
            services.ConfigureHttpJsonOptions(json => Protocol.Messages.ProtocolJson.Configure(json.SerializerOptions));
            services.AddApiDocument(ApiDocuments.Public, "OpenPurse store", _ => true);
            services.AddRateLimiter(limits => limits.AddClientRateLimit(options.ClientOrdersPerSecond, options.ClientOrderBurst));
            // Every endpoint says who may call it: the public ones allow anyone, the admin API's
            // declare the owner's token (StoreAdminAccess); one that says nothing is refused to everyone.
            services.AddStoreAdminAccess(options);
            configure?.Invoke(builder);

            var app = builder.Build();
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            app.UseRequestLimits();
            app.UseRouting();
            app.UseRoutesOnly();
            app.UseAuthentication();
            app.UseAuthorization();
            app.UseRateLimiter();
            app.MapStoreApi();
            app.MapPages(agentOrigin, typeof(StoreHost).Assembly, [("/", "shop.html"), ("/shop.js", "shop.js")]);
            app.MapStoreTelemetry(options, directory, keys);
            return app;
        }
        catch
        {
            keys.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What the operator's administrator registers for each member store (<see cref="OperatorRegistration"/>),
    /// as a JSON array: completion notices go below <see cref="StoreOptions.PublicUrl"/>, or the
    /// first of <see cref="StoreOptions.Urls"/>. Makes the members' keys if they are not there yet.
    /// </summary>
    /// <exception cref="ArgumentException">No public URL can be told (a URL with port 0).</exception>
    internal static string Registrations(StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.DataDirectory, nameof(options));
        var directory = StoreDirectory.Create(options);
        var publicUrl = options.PublicUrl ?? new Uri(LoopbackUrls(options.Urls)[0]);
        if (publicUrl.Port == 0)
        {
            throw new ArgumentException("The store listens on a free port (0): set Store:PublicUrl to where the operator reaches it.", nameof(options));
        }

        PrivateFiles.CreateDirectory(options.DataDirectory);
        using var keys = MemberKeys.LoadOrCreate(options.DataDirectory, directory.Members.Select(m => m.StoreId));
        return System.Text.Json.JsonSerializer.Serialize(OperatorRegistration.For(directory.MallId, options.Members, keys, publicUrl), Protocol.Messages.ProtocolJson.Options);
    }

    /// <summary>The address the application listens on, once started.</summary>
    /// <exception cref="InvalidOperationException">The application has not started.</exception>
    internal static Uri BoundAddress(WebApplication app) => ServerAddresses.Bound(app, "store");

    /// <summary>The store's URLs: loopback only (<see cref="ServerAddresses.LoopbackOnly"/>).</summary>
    internal static string[] LoopbackUrls(string? urls) => ServerAddresses.LoopbackOnly(urls, "store");
}
