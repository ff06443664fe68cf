using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Credit;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Operator.Tls;
using OpenPurse.Operator.TopUps;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Transport;
using OpenPurse.Storage;

namespace OpenPurse.Operator;

/// <summary>How an operator node runs: where its data and keys are, where it listens.</summary>
/// <remarks>
/// Every part has an embedded default (SQLite, the software key vault, plain HTTP on loopback)
/// and a production choice (PostgreSQL, a PKCS#11 token, TLS); see docs/operations.md.
/// </remarks>
public sealed record OperatorOptions
{
    /// <summary>Holds the registry (operator.db) and the software vault unless configured elsewhere.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Registry database engine: <c>sqlite</c> (default) or <c>postgresql</c>.</summary>
    public string DatabaseProvider { get; init; } = "sqlite";

    /// <summary>Registry database; default for SQLite: operator.db in <see cref="DataDirectory"/>.</summary>
    public string? ConnectionString { get; init; }

    /// <summary>Where the keys live: <c>software</c> (default) or <c>pkcs11</c>.</summary>
    public string KeyVault { get; init; } = "software";

    /// <summary>The software key vault's directory; default: DataDirectory/vault.</summary>
    public string? VaultDirectory { get; init; }

    /// <summary>Create the vault's keys on first start (development and demo); production initializes it explicitly.</summary>
    public bool CreateVaultIfMissing { get; init; }

    /// <summary>
    /// How long a node signs with the operator key it last read as active before it reads the
    /// registry's key states again (docs/operations.md, "Rotating keys"): the longest a node goes on
    /// signing with the old key after another node's <c>key activate</c>.
    /// </summary>
    public TimeSpan OperatorKeyRefresh { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The PKCS#11 token, when <see cref="KeyVault"/> is <c>pkcs11</c>.</summary>
    public Pkcs11Options? Pkcs11 { get; init; }

    /// <summary>Kestrel URLs; loopback only by default. An https URL needs <see cref="TlsCertificatePath"/>.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>PEM server certificate (chain) for https URLs.</summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificatePath"/>.</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>PEM root certificates to trust when calling stores over https (besides the system's).</summary>
    public string? TrustedRootsPath { get; init; }

    /// <summary>
    /// Kestrel URLs of the admin API (/v1/admin), its own listener; loopback only by default. The
    /// admin endpoints answer only here and the public ones only on <see cref="Urls"/>. Empty: no
    /// admin listener. An https URL is served with the same certificate as <see cref="Urls"/>.
    /// </summary>
    public string AdminUrls { get; init; } = "http://127.0.0.1:5081";

    /// <summary>
    /// An administrator's bearer token, named "admin" in the audit trail; best given in the
    /// environment (OpenPurse__Operator__AdminToken) rather than a file. Null: none.
    /// </summary>
    public string? AdminToken { get; init; }

    /// <summary>Further admin tokens, each by its SHA-256, with a name and a role (administrator or auditor).</summary>
    public IReadOnlyList<AdminTokenOptions> AdminTokens { get; init; } = [];

    /// <summary>
    /// How long after round trip 1 a settlement may wait for its card's answer before the sweeper
    /// expires it and tells the store it is not paid. A debit the card runs later goes back to the card.
    /// </summary>
    public TimeSpan SettlementTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How often the sweeper expires overdue settlements and retells stores their outcomes; zero turns it off.</summary>
    public TimeSpan SweepInterval { get; init; } = DefaultSweepInterval;

    /// <summary>The default <see cref="SweepInterval"/>; also the first wait before telling a store again when the sweeper only runs on demand.</summary>
    public static TimeSpan DefaultSweepInterval { get; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest wait between two tellings of an outcome a store has not acknowledged (they start at <see cref="SweepInterval"/> and double).</summary>
    public TimeSpan StoreRetellIntervalMax { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Definitive refusals (4xx) of an ACN after which the sweeper stops telling the store and the settlement becomes disputed.</summary>
    public int StoreRefusalsMax { get; init; } = 5;

    /// <summary>How long a store may fail to take an outcome before the sweeper stops telling it (an ACN's settlement becomes disputed).</summary>
    public TimeSpan StoreFailingMax { get; init; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Settlement and card requests a node works on at once; the others wait their turn in a queue.
    /// Below the registry's connection pool (Npgsql's 100 by default), so that an admitted request
    /// never waits for a connection.
    /// </summary>
    public int RequestsInFlightMax { get; init; } = 64;

    /// <summary>Requests that may wait for a turn; beyond it a request is answered 503 operator.busy at once.</summary>
    public int RequestQueueMax { get; init; } = 4096;

    /// <summary>
    /// Requests per second one client address may keep up on the public API (key sets, settlements,
    /// cards); beyond it and <see cref="ClientRequestBurst"/>, 429 request.rate_limited. A purchase
    /// takes three or four requests. Behind a reverse proxy every client has the proxy's address:
    /// see docs/operations.md.
    /// </summary>
    public int ClientRequestsPerSecond { get; init; } = 20;

    /// <summary>Requests one client address may make at once after a pause.</summary>
    public int ClientRequestBurst { get; init; } = 100;

    /// <summary>The credit authorizer that top-ups are charged through; none (no <c>Url</c>): top-ups are unavailable.</summary>
    public AuthorizerClientOptions? Authorizer { get; init; }

    /// <summary>The most one top-up may add, e.g. <c>500.00 EUR</c>.</summary>
    public string TopUpMax { get; init; } = "500.00 EUR";

    /// <summary>The most one card may be topped up by in a UTC calendar day (top-ups crediting, credited or captured).</summary>
    public string DailyTopUpMax { get; init; } = "1000.00 EUR";

    /// <summary>
    /// How long a top-up may stay authorizing without the wallet sending its request again (its
    /// authorizer's answer lost, the wallet gone) before the sweeper abandons it and voids whatever
    /// the authorizer approved for it. Longer than the wallet's retries take.
    /// </summary>
    public TimeSpan TopUpAuthorizingMax { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Where the top-up pages' wallet agent listens (<c>openpurse agent</c>, on the card holder's
    /// own machine): written into the pages, and the one other origin their content security policy
    /// lets them connect to. http on a loopback address, or https; no path.
    /// </summary>
    public Uri AgentUrl { get; init; } = Pages.DefaultAgentUrl;
}

/// <summary>Where the credit authorizer is and how to call it (docs/operations.md).</summary>
public sealed record AuthorizerClientOptions
{
    /// <summary>The authorizer's base URL, e.g. <c>http://127.0.0.1:5095</c>.</summary>
    public string? Url { get; init; }

    /// <summary>One of the authorizer's API keys; or <see cref="ApiKeyFile"/>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>A file holding the API key (its first line), so that it is not on a command line.</summary>
    public string? ApiKeyFile { get; init; }

    /// <summary>How long one call may take before it counts as unanswered.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The API key, from <see cref="ApiKey"/> or <see cref="ApiKeyFile"/>.</summary>
    /// <exception cref="InvalidOperationException">Neither is set, or the file is empty.</exception>
    public string ReadApiKey() =>
        !string.IsNullOrEmpty(ApiKey) ? ApiKey
        : ApiKeyFile is { Length: > 0 } file && File.ReadLines(file).FirstOrDefault()?.Trim() is { Length: > 0 } key ? key
        : throw new InvalidOperationException("Authorizer:ApiKey or Authorizer:ApiKeyFile is required with Authorizer:Url.");
}

/// <summary>An admin token as configured: never the token itself, only its SHA-256.</summary>
public sealed record AdminTokenOptions
{
    /// <summary>Who presents it, as the audit trail names them.</summary>
    public required string Name { get; init; }

    /// <summary><c>administrator</c> (changes things) or <c>auditor</c> (reads only).</summary>
    public string Role { get; init; } = "auditor";

    /// <summary>SHA-256 of the token's UTF-8 bytes, 64 hex digits (<c>printf %s "$TOKEN" | sha256sum</c>).</summary>
    public required string Sha256 { get; init; }
}

/// <summary>Where the PKCS#11 vault finds its token and keys.</summary>
public sealed record Pkcs11Options
{
    /// <summary>The PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.</summary>
    public required string Library { get; init; }

    /// <summary>The token's label.</summary>
    public required string TokenLabel { get; init; }

    /// <summary>The environment variable holding the user PIN (never the PIN itself in configuration).</summary>
    public string PinEnvironmentVariable { get; init; } = "OPENPURSE_PKCS11_PIN";

    /// <summary>Label of the card master key (AES-128, non-extractable).</summary>
    public string MasterKeyLabel { get; init; } = "openpurse-card-master";

    /// <summary>Label of the operator's signing key pair (EC P-256).</summary>
    public string SigningKeyLabel { get; init; } = "openpurse-operator-signing";
}

/// <summary>Builds an operator node.</summary>
public static class OperatorHost
{
    /// <summary>How long a stopping node waits for requests in flight before it ends them.</summary>
    internal static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A configured, migrated operator; call StartAsync or RunAsync on it.</summary>
    /// <param name="options">Where data and keys are, where to listen.</param>
    /// <param name="args">Command-line arguments for the host's configuration.</param>
    /// <param name="configure">Last changes to the builder (logging, time) by an embedding host or a test.</param>
    public static async Task<WebApplication> BuildAsync(OperatorOptions options, string[]? args = null, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.RequestsInFlightMax < 1 || options.RequestQueueMax < 0 || options.ClientRequestsPerSecond < 1 || options.ClientRequestBurst < 1)
        {
            throw new InvalidOperationException("RequestsInFlightMax, ClientRequestsPerSecond and ClientRequestBurst are at least 1, RequestQueueMax at least 0.");
        }

        if (options.StoreRefusalsMax < 1 || options.StoreRetellIntervalMax <= TimeSpan.Zero || options.StoreFailingMax <= TimeSpan.Zero)
        {
            throw new InvalidOperationException("StoreRefusalsMax is at least 1; StoreRetellIntervalMax and StoreFailingMax are positive.");
        }

        if (options.TopUpAuthorizingMax <= TimeSpan.Zero || options.OperatorKeyRefresh <= TimeSpan.Zero)
        {
            throw new InvalidOperationException("TopUpAuthorizingMax and OperatorKeyRefresh are positive.");
        }

        var agentOrigin = Pages.AgentOrigin(options.AgentUrl)
            ?? throw new InvalidOperationException("AgentUrl, the wallet agent's URL, is an http URL on a loopback address or an https URL, without a path.");

        // The content root is where the program is, so that the appsettings.json shipped beside it is read.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args ?? [], ContentRootPath = AppContext.BaseDirectory });
        builder.AddOperatorTelemetry();
        ServerTls.ConfigureKestrel(builder.WebHost, "the operator", $"{options.Urls};{options.AdminUrls}".Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            options.TlsCertificatePath, options.TlsKeyPath);
        builder.Services.AddSingleton(Listeners.Configure(builder.WebHost, options));
        builder.Services.ConfigureHttpJsonOptions(json => ProtocolJson.Configure(json.SerializerOptions));
        builder.WebHost.ConfigureKestrel(RequestLimits.Configure);
        OneLineConsoleFormatter.AddTo(builder.Logging);
        builder.Services.AddCodedProblemDetails();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        // SIGTERM or SIGINT: stop taking requests, let those in flight finish (each is short, or a
        // single transaction that commits or rolls back whole), and be gone within seconds, as a
        // service manager expects; not the host's default of half a minute.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
        var dataDirectory = PrivateFiles.CreateDirectory(options.DataDirectory);
        // The keys first: a node that cannot have them leaves no new database behind.
        var vault = KeyVaults.Open(options, dataDirectory);
        Database database;
        OperatorKeyRing keyRing;
        try
        {
            database = Database.Open(options, dataDirectory);
            await database.MigrateAsync().ConfigureAwait(false);
            keyRing = await OperatorKeyRing.OpenAsync(vault, database, options.OperatorKeyRefresh).ConfigureAwait(false);
        }
        catch
        {
            (vault as IDisposable)?.Dispose();
            throw;
        }

        builder.Services.AddSingleton(database);
        // Everything that signs asks the ring, which signs with the registry's active key.
        builder.Services.AddSingleton<ISecurityModule>(keyRing);
        builder.Services.AddSingleton(keyRing);
        builder.Services.AddSingleton<StoreRegistry>();
        builder.Services.AddSingleton<CardRecovery>();
        builder.Services.AddSingleton<SettlementService>();
        builder.Services.AddSingleton<CardSync>();
        builder.Services.AddSingleton<Credits.CardCredits>();
        builder.Services.AddSingleton<TopUpEvents>();
        builder.Services.AddSingleton<TopUpResolution>();
        builder.Services.AddSingleton<TopUpRequests>();
        builder.Services.AddSingleton<TopUpCompletion>();
        builder.Services.AddSingleton<Refunds.RefundService>();
        builder.Services.AddSingleton<Decreases.ValueDecreaseService>();
        builder.Services.AddSingleton<Decreases.Payouts>();
        builder.Services.AddSingleton<Clearing.ClearingService>();
        builder.Services.AddSingleton(TopUpLimits.From(options));
        if (options.Authorizer is { Url: { Length: > 0 } authorizerUrl } authorizer)
        {
            if (!Uri.TryCreate(authorizerUrl.EndsWith('/') ? authorizerUrl : authorizerUrl + "/", UriKind.Absolute, out var authorizerUri) || authorizer.Timeout <= TimeSpan.Zero)
            {
                throw new InvalidOperationException("Authorizer:Url is an absolute URL and Authorizer:Timeout is positive.");
            }

            var apiKey = authorizer.ReadApiKey();
            builder.Services.AddHttpClient(nameof(HttpCreditAuthorizer), client =>
            {
                client.BaseAddress = authorizerUri;
                // The client's own time-out per call is the one that counts; this one only backs it.
                client.Timeout = authorizer.Timeout + TimeSpan.FromSeconds(5);
            });
            builder.Services.AddSingleton<ICreditAuthorizer>(services => new HttpCreditAuthorizer(
                services.GetRequiredService<IHttpClientFactory>().CreateClient(nameof(HttpCreditAuthorizer)), apiKey, authorizer.Timeout));
        }

        builder.Services.AddHostedService<SettlementSweeper>();
        // A serving node reads the active signing key on a timer too, so that an idle node signs its next
        // message under a key activated meanwhile, not under the one it last read.
        builder.Services.AddHostedService(services => new OperatorKeyRefresher(keyRing, options.OperatorKeyRefresh));
        builder.Services.AddSingleton<CardIssuer>();
        builder.Services.AddSingleton<CardRegistry>();
        builder.Services.AddSingleton<CardHolders>();
        builder.Services.AddSingleton<CardReplacements>();
        builder.Services.AddSingleton<Ledger>();
        builder.Services.AddSingleton<StoreStatements>();
        builder.Services.AddSingleton<Examination>();
        builder.Services.AddSingleton<AuditTrail>();
        var storeClient = builder.Services.AddHttpClient<StoreNotifier>(client =>
        {
            client.Timeout = StoreNotifier.Timeout;
            // A store's answer is read whole: a receipt, a page of its statement, a problem.
            client.MaxResponseContentBufferSize = StoreNotifier.ResponseLengthMax;
        });
        if (ServerTls.LoadTrustedRoots(options.TrustedRootsPath) is { } roots)
        {
            // Stores with certificates from the deployment's CA; the system's roots still count.
            storeClient.ConfigurePrimaryHttpMessageHandler(() => TrustedRoots.CreateHandler(roots));
        }

        builder.Services.AddExceptionHandler<RegistryBusy>();
        builder.Services.AddRateLimiter(limits =>
        {
            Admission.Configure(limits, options);
            // Asked first; a request it lets through still waits its turn in admission control.
            limits.AddClientRateLimit(options.ClientRequestsPerSecond, options.ClientRequestBurst);
        });
        builder.Services.AddAdminAccess(options);
        builder.Services.AddOperatorApiDocuments();
        configure?.Invoke(builder);

        var app = builder.Build();
        keyRing.UseLogger(app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger<OperatorKeyRing>());
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestLimits();
        app.UseRouting();
        app.UseAdminAudit();
        // Authentication before the gate, so that the audit trail names who asked even for what it refused as unknown.
        app.UseAuthentication();
        app.UseListenerGate();
        app.UseAuthorization();
        app.UseKnownCharsets();
        app.UseRateLimiter();
        app.MapOperatorApi();
        app.MapAdminApi();
        app.MapTopUpPages(agentOrigin, app.Services.GetRequiredService<TopUpLimits>());
        app.MapOperatorTelemetry(options, dataDirectory);
        return app;
    }
}
