using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator;

/// <summary>How an operator node runs: where its data and keys are, where it listens.</summary>
public sealed record OperatorOptions
{
    /// <summary>Holds the registry (operator.db) unless <see cref="ConnectionString"/> says otherwise.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Registry database; default: SQLite in <see cref="DataDirectory"/>.</summary>
    public string? ConnectionString { get; init; }

    /// <summary>The software key vault's directory; default: DataDirectory/vault.</summary>
    public string? VaultDirectory { get; init; }

    /// <summary>Create the vault's keys on first start (development and demo); production initializes it explicitly.</summary>
    public bool CreateVaultIfMissing { get; init; }

    /// <summary>Kestrel URLs; loopback only by default.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>Bearer token for /v1/admin; null disables the admin API.</summary>
    public string? AdminToken { get; init; }
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
        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        builder.WebHost.UseUrls(options.Urls);
        builder.Services.ConfigureHttpJsonOptions(json => ProtocolJson.Configure(json.SerializerOptions));
        builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = context =>
        {
            // Framework-made problems (unreadable bodies, unknown routes, faults) get stable codes too.
            context.ProblemDetails.Extensions.TryAdd("code", context.ProblemDetails.Status switch
            {
                StatusCodes.Status400BadRequest => "request.malformed",
                StatusCodes.Status404NotFound => "request.not_found",
                StatusCodes.Status405MethodNotAllowed => "request.method_not_allowed",
                StatusCodes.Status415UnsupportedMediaType => "request.unsupported_media_type",
                _ => "internal.error",
            });
            if (context.ProblemDetails.Type?.StartsWith(Refusal.TypePrefix, StringComparison.Ordinal) != true)
            {
                context.ProblemDetails.Type = Refusal.TypePrefix + context.ProblemDetails.Extensions["code"];
            }
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        var dataDirectory = Directory.CreateDirectory(options.DataDirectory).FullName;
        var database = options.ConnectionString is { } cs ? new Database(cs) : Database.InDirectory(dataDirectory);
        await database.MigrateAsync().ConfigureAwait(false);
        builder.Services.AddSingleton(database);
        var vault = SoftwareKeyVault.Open(options.VaultDirectory ?? Path.Combine(dataDirectory, "vault"), options.CreateVaultIfMissing);
        builder.Services.AddSingleton<ISecurityModule>(vault);
        builder.Services.AddSingleton<StoreRegistry>();
        builder.Services.AddSingleton<SettlementService>();
        builder.Services.AddSingleton<CardIssuer>();
        builder.Services.AddHttpClient<StoreNotifier>(client => client.Timeout = StoreNotifier.Timeout);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAdminToken();
        app.MapOperatorApi();
        return app;
    }
}
