using System.Buffers.Binary;
using System.Data;
using System.Data.Common;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using Microsoft.Data.Sqlite;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The registry's database: opens connections with durable settings and applies the versioned
/// migrations embedded in this assembly (Registry/Migrations/NNNN_name.sql), each once, in order,
/// each in its own transaction. SQLite or PostgreSQL; what differs between them is in <see cref="SqlDialect"/>.
/// </summary>
internal sealed class Database
{
    private const string MigrationsTable =
        "CREATE TABLE IF NOT EXISTS schema_migrations (version {int64} PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

    private readonly string _connectionString;

    // SQLite's one writer at a time, queued in the node rather than at the file lock, and
    // committed in groups. It holds a connection only while a group is open.
    private readonly SqliteCommitGroup? _commits;

    public Database(SqlDialect dialect, string connectionString)
    {
        Dialect = dialect;
        _connectionString = dialect.Configure(connectionString);
        if (dialect == SqlDialect.Sqlite)
        {
            // Before SQLite makes the file: the registry holds every full card number.
            PrivateFiles.ProtectSqliteDatabase(_connectionString);
        }

        _commits = dialect == SqlDialect.Sqlite ? new SqliteCommitGroup(async ct => (SqliteConnection)await OpenAsync(ct).ConfigureAwait(false)) : null;
    }

    public SqlDialect Dialect { get; }

    /// <summary>The registry the configuration names: SQLite in the data directory by default.</summary>
    /// <exception cref="InvalidOperationException">An unknown provider, or PostgreSQL without a connection string.</exception>
    public static Database Open(OperatorOptions options, string dataDirectory) => options.DatabaseProvider switch
    {
        "sqlite" => new Database(SqlDialect.Sqlite, options.ConnectionString ?? new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDirectory, "operator.db") }.ToString()),
        "postgresql" => new Database(SqlDialect.PostgreSql, options.ConnectionString
            ?? throw new InvalidOperationException("The database provider 'postgresql' needs a ConnectionString, e.g. 'Host=db;Database=openpurse;Username=operator'.")),
        _ => throw new InvalidOperationException($"Unknown database provider '{options.DatabaseProvider}'; use 'sqlite' or 'postgresql'."),
    };

    public Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default) =>
        Dialect.OpenAsync(_connectionString, cancellationToken);

    /// <summary>
    /// A transaction for a state change, whose commands run on its <see cref="WriteTransaction.Connection"/>:
    /// serial on SQLite (the node's writers take turns and commit in groups, see <see cref="SqliteCommitGroup"/>),
    /// READ COMMITTED on <paramref name="connection"/> on PostgreSQL, where conditional updates and
    /// unique constraints guard each decision (see <see cref="SqlDialect"/>).
    /// </summary>
    public ValueTask<WriteTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return BeginAsync(connection, cancellationToken);
    }

    /// <summary>
    /// A transaction for a state change that reads nothing before it: on PostgreSQL on a connection
    /// of its own, which goes back to the pool when the transaction is disposed.
    /// </summary>
    public ValueTask<WriteTransaction> BeginWriteAsync(CancellationToken cancellationToken = default) =>
        BeginAsync(null, cancellationToken);

    /// <summary>
    /// One statement as a state change of its own. On PostgreSQL it runs on <paramref name="connection"/>,
    /// the one the request holds; without one it opens its own.
    /// </summary>
    /// <returns>The rows it changed.</returns>
    public async Task<int> WriteAsync(DbConnection? connection, string sql, object parameters, CancellationToken cancellationToken = default)
    {
        await using var write = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
        var changed = await write.Connection.ExecuteAsync(sql, parameters, write.Inner).ConfigureAwait(false);
        await write.CommitAsync(cancellationToken).ConfigureAwait(false);
        return changed;
    }

    /// <summary>One statement as a state change of its own, in its turn with the node's other writers.</summary>
    /// <returns>The rows it changed.</returns>
    public Task<int> WriteAsync(string sql, object parameters, CancellationToken cancellationToken = default) =>
        WriteAsync(null, sql, parameters, cancellationToken);

    // The commit group's turn on SQLite; on PostgreSQL a transaction on the given connection, or on
    // one of its own when none is given.
    private async ValueTask<WriteTransaction> BeginAsync(DbConnection? connection, CancellationToken cancellationToken)
    {
        if (_commits is not null)
        {
            return new WriteTransaction(await _commits.BeginAsync(cancellationToken).ConfigureAwait(false));
        }

        var own = connection is null;
        connection ??= await OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return new WriteTransaction(connection, await Dialect.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false), ownsConnection: own);
        }
        catch when (own)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A read-only snapshot for a report: every query in it sees the same committed state.
    /// REPEATABLE READ READ ONLY on PostgreSQL; on SQLite a deferred transaction, which takes no
    /// write lock and reads (in WAL mode) the snapshot of its first read until it ends.
    /// </summary>
    public async ValueTask<DbTransaction> BeginReadAsync(DbConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (Dialect == SqlDialect.Sqlite)
        {
            return ((SqliteConnection)connection).BeginTransaction(deferred: true);
        }

        var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
        try
        {
            await connection.ExecuteAsync("SET TRANSACTION READ ONLY", transaction: transaction).ConfigureAwait(false);
            return transaction;
        }
        catch
        {
            await transaction.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The lock nodes take to migrate: any constant no other program in the database uses.</summary>
    private const long MigrationLockKey = 0x4F50_5552_5345_0001; // "OPURSE", 1

    /// <summary>
    /// Makes the other syncs of this card wait until this transaction ends. Each sync decides on
    /// what the one before it left, where without the lock racing syncs would only find at write
    /// time that another changed the settlement first, and run again, as often as they lose.
    /// Taken first in the transaction and only by syncs, so it never waits on a row lock's holder
    /// that waits on it.
    /// </summary>
    public Task LockCardSyncAsync(DbConnection connection, DbTransaction transaction, string cardId) =>
        Dialect.LockAsync(connection, transaction, BinaryPrimitives.ReadInt64BigEndian(SHA256.HashData(Encoding.UTF8.GetBytes($"openpurse-card-sync:{cardId}"))));

    /// <summary>Whether a statement failed on a UNIQUE or PRIMARY KEY constraint.</summary>
    public bool IsUniqueViolation(DbException exception) => Dialect.IsUniqueViolation(exception);

    /// <remarks>Several nodes may start at once on one PostgreSQL: each migration's transaction first takes the migration lock, then looks whether another node applied it meanwhile.</remarks>
    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        foreach (var (version, name, sql) in Migrations(Dialect))
        {
            await using var transaction = await Dialect.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
            await Dialect.LockAsync(connection, transaction, MigrationLockKey).ConfigureAwait(false);
            await connection.ExecuteAsync(Dialect.Translate(MigrationsTable), transaction: transaction).ConfigureAwait(false);
            var applied = await connection.ExecuteScalarAsync<long>(
                "SELECT COUNT(*) FROM schema_migrations WHERE version = @version", new { version }, transaction).ConfigureAwait(false);
            if (applied > 0)
            {
                continue;
            }

            await connection.ExecuteAsync(Dialect.Translate(sql), transaction: transaction).ConfigureAwait(false);
            await connection.ExecuteAsync(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@version, @name, @now)",
                new { version, name, now = StoredTime.Format(DateTimeOffset.UtcNow) },
                transaction).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The embedded migrations in version order, untranslated, as <paramref name="dialect"/> runs them:
    /// NNNN_name.sql for both engines, followed by NNNN_name.sqlite.sql or NNNN_name.postgresql.sql
    /// where the engines need different statements (triggers).
    /// </summary>
    internal static IEnumerable<(long Version, string Name, string Sql)> Migrations(SqlDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(dialect);
        var assembly = Assembly.GetExecutingAssembly();
        const string Prefix = "OpenPurse.Operator.Registry.Migrations.";
        var parts = new SortedDictionary<long, (string Name, List<string> Shared, List<string> Engine)>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = resource[Prefix.Length..^".sql".Length];
            var engine = Path.GetExtension(name) is { Length: > 0 } extension ? extension[1..] : null;
            if (engine is not null && engine != SqlDialect.Sqlite.Provider && engine != SqlDialect.PostgreSql.Provider)
            {
                throw new InvalidOperationException($"Migration {resource} names no engine: NNNN_name.sqlite.sql or NNNN_name.postgresql.sql.");
            }

            if (engine is not null && engine != dialect.Provider)
            {
                continue;
            }

            name = Path.GetFileNameWithoutExtension(name);
            var version = long.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture);
            using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
            var sql = reader.ReadToEnd();
            if (!parts.TryGetValue(version, out var part))
            {
                parts.Add(version, part = (name, [], []));
            }

            (engine is null ? part.Shared : part.Engine).Add(sql);
        }

        // The shared statements first: the engine's own (triggers) work on what they made.
        return parts.Select(p => (p.Key, p.Value.Name, string.Join("\n", p.Value.Shared.Concat(p.Value.Engine))));
    }
}
