using System.Data.Common;
using System.Reflection;
using Dapper;
using Microsoft.Data.Sqlite;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The registry's database: opens connections with durable settings and applies the versioned
/// migrations embedded in this assembly (Registry/Migrations/NNNN_name.sql), each once, in order,
/// each in its own transaction.
/// </summary>
internal sealed class Database
{
    private readonly string _connectionString;

    public Database(string connectionString)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString)
        {
            Pooling = true,
            ForeignKeys = true,
            DefaultTimeout = 30,
        };
        _connectionString = builder.ToString();
    }

    /// <summary>The registry the configuration names: SQLite in the data directory by default.</summary>
    public static Database Open(OperatorOptions options, string dataDirectory) => options.DatabaseProvider switch
    {
        "sqlite" => new Database(options.ConnectionString ?? new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDirectory, "operator.db") }.ToString()),
        _ => throw new InvalidOperationException($"Unknown database provider '{options.DatabaseProvider}'; use 'sqlite'."),
    };

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        // WAL with synchronous=FULL: a commit is on disk when it returns (DESIGN §6: durable commits).
        await connection.ExecuteAsync("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;").ConfigureAwait(false);
        return connection;
    }

    /// <summary>
    /// A write transaction. SQLite's BEGIN IMMEDIATE takes the write lock at once, so two writers
    /// serialize instead of failing at commit: each state change runs as if alone (serializable).
    /// </summary>
    public static DbTransaction BeginWrite(DbConnection connection) =>
        ((SqliteConnection)connection).BeginTransaction(deferred: false);

    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)").ConfigureAwait(false);
        var applied = (await connection.QueryAsync<long>("SELECT version FROM schema_migrations").ConfigureAwait(false)).ToHashSet();
        foreach (var (version, name, sql) in Migrations())
        {
            if (applied.Contains(version))
            {
                continue;
            }

            await using var transaction = BeginWrite(connection);
            await connection.ExecuteAsync(sql, transaction: transaction).ConfigureAwait(false);
            await connection.ExecuteAsync(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@version, @name, @now)",
                new { version, name, now = Clock.Format(DateTimeOffset.UtcNow) },
                transaction).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static IEnumerable<(long Version, string Name, string Sql)> Migrations()
    {
        var assembly = Assembly.GetExecutingAssembly();
        const string Prefix = "OpenPurse.Operator.Registry.Migrations.";
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = resource[Prefix.Length..^".sql".Length];
            var version = long.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture);
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            yield return (version, name, reader.ReadToEnd());
        }
    }
}

/// <summary>Times in the registry: ISO 8601 UTC with milliseconds, which sorts as text.</summary>
internal static class Clock
{
    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
