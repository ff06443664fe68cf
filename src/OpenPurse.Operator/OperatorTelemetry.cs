using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenPurse.Hosting;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;

namespace OpenPurse.Operator;

/// <summary>
/// The operator's own metrics (meter <c>OpenPurse.Operator</c>, docs/operations.md): settlements by
/// the state they entered and the sweeper's work. Latency, the admission queue and refusals come
/// from ASP.NET Core's and the shared instruments (<see cref="ServerTelemetry"/>).
/// </summary>
internal sealed class OperatorMetrics(ServerMeter meter)
{
    /// <summary>The operator's meter and activity source.</summary>
    public const string MeterName = "OpenPurse.Operator";

    /// <summary>The service name its traces and metrics carry.</summary>
    public const string ServiceName = "openpurse-operator";

    private readonly Counter<long> _settlements = meter.Meter.CreateCounter<long>(
        "openpurse.operator.settlements", "{settlement}",
        "Settlements that entered a state: authorized (round trip 1), completed (the card paid), voided, expired, reversing, disputed, by state.");

    private readonly Counter<long> _topUps = meter.Meter.CreateCounter<long>(
        "openpurse.operator.topups", "{topup}",
        "Top-ups by credit card that entered a state: authorizing, declined, crediting, credited, captured, voiding, voided, by state.");

    private readonly Counter<long> _refunds = meter.Meter.CreateCounter<long>(
        "openpurse.operator.refunds", "{refund}",
        "Refunds by stores that entered a state: owed (recorded, store → pending), credited (the card took it), by state.");

    private readonly Counter<long> _sweeps = meter.Meter.CreateCounter<long>(
        "openpurse.operator.sweeps", "{sweep}", "Sweeps the node ran to their end.");

    private readonly Counter<long> _sweptExpired = meter.Meter.CreateCounter<long>(
        "openpurse.operator.sweeper.expired", "{settlement}", "Settlements the sweeper expired (their card did not answer in time).");

    private readonly Counter<long> _sweptTold = meter.Meter.CreateCounter<long>(
        "openpurse.operator.sweeper.told", "{outcome}", "Outcomes the sweeper told stores again, by the store's answer (acknowledged, refused, failed).");

    /// <summary>A settlement entered <paramref name="state"/>, counted under its stored text.</summary>
    public void Entered(SettlementState state) => _settlements.Add(1, new KeyValuePair<string, object?>("state", state.ToText()));

    /// <summary>A top-up entered the state whose stored text is <paramref name="state"/>.</summary>
    public void EnteredTopUp(string state) => _topUps.Add(1, new KeyValuePair<string, object?>("state", state));

    /// <summary>A refund entered the state whose stored text is <paramref name="state"/>.</summary>
    public void EnteredRefund(string state) => _refunds.Add(1, new KeyValuePair<string, object?>("state", state));

    /// <summary>One sweep ended.</summary>
    public void Swept(int expired)
    {
        _sweeps.Add(1);
        _sweptExpired.Add(expired);
    }

    /// <summary>The sweeper told a store an outcome, and the store answered so.</summary>
    public void Told(string answer) => _sweptTold.Add(1, new KeyValuePair<string, object?>("answer", answer));
}

/// <summary>
/// The operator's logs, traces and metrics: the shared set-up (<see cref="ServerTelemetry"/>), its
/// own instruments, the scrape endpoint on the admin listener and the start-up line.
/// </summary>
internal static partial class OperatorTelemetry
{
    /// <summary>Logging defaults, traces, metrics and the operator's instruments.</summary>
    public static WebApplicationBuilder AddOperatorTelemetry(this WebApplicationBuilder builder)
    {
        builder.AddServerTelemetry(OperatorMetrics.ServiceName, OperatorMetrics.MeterName);
        builder.Services.AddSingleton<OperatorMetrics>();
        return builder;
    }

    /// <summary>The scrape endpoint, and the start-up line once the listeners are bound.</summary>
    public static WebApplication MapOperatorTelemetry(this WebApplication app, OperatorOptions options, string dataDirectory)
    {
        // Anonymous on the admin listener: it answers counts only (no card number, key or token),
        // and that listener is internal (loopback by default), where a scraper has no admin token.
        // Not audited: a scrape every few seconds would bury the administrators' actions.
        app.MapMetrics().WithMetadata(AdminSurface.Instance, AdminAudit.Unaudited.Instance).AllowAnonymous();
        LogWhenStarted(app, options, dataDirectory);
        return app;
    }

    /// <summary>Logs the node's database, key vault, signing key and listeners when the host has started: one line, never a secret.</summary>
    private static void LogWhenStarted(WebApplication app, OperatorOptions options, string dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var services = app.Services;
            var listeners = services.GetRequiredService<Listeners>();
            var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("OpenPurse.Operator.OperatorHost");
            var database = DatabaseOf(options, dataDirectory);
            var vault = VaultOf(options, dataDirectory);
            var kid = services.GetRequiredService<ISecurityModule>().OperatorKey.KeyId;
            var publicUrls = string.Join(' ', listeners.PublicUrls.Select(url => url.GetLeftPart(UriPartial.Authority)));
            var adminUrls = listeners.AdminUrls.Count == 0 ? "none" : string.Join(' ', listeners.AdminUrls.Select(url => url.GetLeftPart(UriPartial.Authority)));
            LogStarted(logger, database, vault, kid, publicUrls, adminUrls);
        });
    }

    /// <summary>
    /// The registry's engine and where it is: named fields of the connection string only, so that a
    /// password (or any setting not listed here) never reaches the log.
    /// </summary>
    internal static string DatabaseOf(OperatorOptions options, string dataDirectory)
    {
        if (options.DatabaseProvider == "postgresql")
        {
            var postgres = new NpgsqlConnectionStringBuilder(options.ConnectionString);
            return $"postgresql host={postgres.Host} port={postgres.Port} database={postgres.Database} user={postgres.Username}";
        }

        var sqlite = new SqliteConnectionStringBuilder(options.ConnectionString ?? "");
        return "sqlite " + (string.IsNullOrEmpty(sqlite.DataSource) ? Path.Combine(dataDirectory, "operator.db") : sqlite.DataSource);
    }

    private static string VaultOf(OperatorOptions options, string dataDirectory) => options.KeyVault == "pkcs11"
        ? $"pkcs11 token '{options.Pkcs11?.TokenLabel}'"
        : "software " + (options.VaultDirectory ?? Path.Combine(dataDirectory, "vault"));

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Operator node started: database {Database}, key vault {KeyVault}, signing key {Kid}, public {PublicUrls}, admin {AdminUrls}")]
    private static partial void LogStarted(ILogger logger, string database, string keyVault, string kid, string publicUrls, string adminUrls);
}
