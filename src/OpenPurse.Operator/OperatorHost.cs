using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Operator.Tls;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Transport;

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

    /// <summary>Bearer token for /v1/admin; null disables the admin API.</summary>
    public string? AdminToken { get; init; }

    /// <summary>
    /// How long after round trip 1 a settlement may wait for its card's answer before the sweeper
    /// expires it and tells the store it is not paid. A debit the card runs later goes back to the card.
    /// </summary>
    public TimeSpan SettlementTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How often the sweeper expires overdue settlements and retells stores their outcomes; zero turns it off.</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(5);

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

        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        builder.WebHost.UseUrls(options.Urls);
        OperatorTls.ConfigureKestrel(builder.WebHost, options);
        builder.Services.ConfigureHttpJsonOptions(json => ProtocolJson.Configure(json.SerializerOptions));
        builder.WebHost.ConfigureKestrel(RequestLimits.Configure);
        OneLineConsoleFormatter.AddTo(builder.Logging);
        builder.Services.AddCodedProblemDetails();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        var dataDirectory = Directory.CreateDirectory(options.DataDirectory).FullName;
        // The keys first: a node that cannot have them leaves no new database behind.
        var vault = KeyVaults.Open(options, dataDirectory);
        Database database;
        try
        {
            database = Database.Open(options, dataDirectory);
            await database.MigrateAsync().ConfigureAwait(false);
        }
        catch
        {
            (vault as IDisposable)?.Dispose();
            throw;
        }

        builder.Services.AddSingleton(database);
        builder.Services.AddSingleton(vault);
        builder.Services.AddSingleton<StoreRegistry>();
        builder.Services.AddSingleton<CardRecovery>();
        builder.Services.AddSingleton<SettlementService>();
        builder.Services.AddSingleton<CardSync>();
        builder.Services.AddHostedService<SettlementSweeper>();
        builder.Services.AddSingleton<CardIssuer>();
        builder.Services.AddSingleton<Ledger>();
        var storeClient = builder.Services.AddHttpClient<StoreNotifier>(client => client.Timeout = StoreNotifier.Timeout);
        if (OperatorTls.LoadTrustedRoots(options) is { } roots)
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
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestLimits();
        app.UseAdminToken();
        app.UseKnownCharsets();
        app.UseRateLimiter();
        app.MapOperatorApi();
        return app;
    }
}
