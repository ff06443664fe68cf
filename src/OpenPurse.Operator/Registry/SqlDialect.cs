using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Dapper;
using Microsoft.Data.Sqlite;
using Npgsql;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// Everything that differs between the registry's two engines, SQLite and PostgreSQL, and nothing
/// else: opening a connection with durable session settings, beginning a write transaction,
/// recognizing a unique violation, a lock that keeps transactions one after another, and the column types
/// the migrations name with tokens. The queries themselves are written once, in SQL both accept.
/// </summary>
/// <remarks>
/// <para>
/// Write transactions. SQLite's <c>BEGIN IMMEDIATE</c> takes the database's write lock at once, so
/// writers run one after another: every state change is serializable by construction. PostgreSQL
/// runs them at READ COMMITTED, and the registry is written so that this gives the same outcomes:
/// every decision a state change takes on what it read is either re-checked by the engine at write
/// time (a conditional <c>UPDATE … WHERE state = 'authorized'</c>, which PostgreSQL re-evaluates on
/// the newest row version after waiting for the row's lock) or backed by a unique constraint (the
/// bill digest, the store's order number, one authorized settlement per card, a key id), whose
/// violation the caller answers by running its checks again on what is committed then. No
/// transaction reads a row it does not then lock or constrain, so there is nothing for SERIALIZABLE
/// to add but aborts: its predicate locks on small, hot index pages would make the starts of
/// different cards abort each other. docs/operations.md lists each state change and its guard.
/// </para>
/// <para>
/// Durability. SQLite runs in WAL mode with <c>synchronous = FULL</c>; PostgreSQL sessions start
/// with <c>synchronous_commit = on</c>, so a commit has reached the disk (and any synchronous
/// standby) when it returns, whatever the server, database or role default says.
/// </para>
/// </remarks>
internal abstract partial class SqlDialect
{
    public static SqlDialect Sqlite { get; } = new SqliteDialect();

    public static SqlDialect PostgreSql { get; } = new PostgreSqlDialect();

    /// <summary>The value of OperatorOptions.DatabaseProvider that selects this dialect.</summary>
    public abstract string Provider { get; }

    /// <summary>The configured connection string with the settings the registry relies on added.</summary>
    public abstract string Configure(string connectionString);

    /// <summary>An open connection whose session has the durability settings.</summary>
    public abstract Task<DbConnection> OpenAsync(string connectionString, CancellationToken cancellationToken);

    /// <summary>A transaction for a state change; see the remarks for the isolation and why.</summary>
    public abstract ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Whether a statement failed on a UNIQUE or PRIMARY KEY constraint (not CHECK, NOT NULL or a foreign key).</summary>
    public abstract bool IsUniqueViolation(DbException exception);

    /// <summary>
    /// Makes every other transaction that takes the lock <paramref name="key"/> wait until this one
    /// ends: for work whose transactions would otherwise only find, at write time, that one of them
    /// changed the row first (nodes migrating together; the syncs of one card).
    /// </summary>
    public abstract Task LockAsync(DbConnection connection, DbTransaction transaction, long key);

    /// <summary>
    /// The SQL with each <c>{token}</c> replaced by this engine's spelling: <c>{int64}</c> a 64-bit
    /// integer column, <c>{blob}</c> a byte string column. Only migrations need tokens.
    /// </summary>
    /// <exception cref="InvalidOperationException">The SQL names a token no dialect defines.</exception>
    public string Translate(string sql)
    {
        var translated = Token().Replace(sql, match => match.Groups[1].Value switch
        {
            "int64" => Int64Type,
            "blob" => BlobType,
            var unknown => throw new InvalidOperationException($"Unknown SQL token '{{{unknown}}}'; the dialects define {{int64}} and {{blob}}."),
        });
        Debug.Assert(!Token().IsMatch(translated), "No token survives translation.");
        return translated;
    }

    /// <summary>The spelling of <c>{int64}</c>.</summary>
    protected abstract string Int64Type { get; }

    /// <summary>The spelling of <c>{blob}</c>.</summary>
    protected abstract string BlobType { get; }

    [GeneratedRegex(@"\{([a-z0-9_]+)\}", RegexOptions.CultureInvariant)]
    private static partial Regex Token();

    private sealed class SqliteDialect : SqlDialect
    {
        /// <summary>SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY (sqlite.org/rescode.html).</summary>
        private const int ConstraintUnique = 2067;
        private const int ConstraintPrimaryKey = 1555;

        public override string Provider => "sqlite";

        // INTEGER, not BIGINT: SQLite's integers are 64-bit already, and this keeps the SQLite schema
        // exactly what it was before the migrations had tokens.
        protected override string Int64Type => "INTEGER";

        protected override string BlobType => "BLOB";

        public override string Configure(string connectionString) => new SqliteConnectionStringBuilder(connectionString)
        {
            Pooling = true,
            ForeignKeys = true,
            DefaultTimeout = 30,
        }.ToString();

        // WAL with synchronous=FULL: a commit is on disk when it returns (durable commits, docs/reliability.md).
        private const string SessionPragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;";

        public override async Task<DbConnection> OpenAsync(string connectionString, CancellationToken cancellationToken) =>
            await SqliteSessions.OpenAsync(connectionString, SessionPragmas, cancellationToken).ConfigureAwait(false);

        public override ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken) =>
            ValueTask.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(deferred: false));

        public override bool IsUniqueViolation(DbException exception) =>
            exception is SqliteException { SqliteExtendedErrorCode: ConstraintUnique or ConstraintPrimaryKey };

        // BEGIN IMMEDIATE already holds the only write lock there is.
        public override Task LockAsync(DbConnection connection, DbTransaction transaction, long key) => Task.CompletedTask;
    }

    private sealed class PostgreSqlDialect : SqlDialect
    {
        public override string Provider => "postgresql";

        protected override string Int64Type => "BIGINT";

        protected override string BlobType => "BYTEA";

        public override string Configure(string connectionString)
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            builder.ApplicationName ??= "openpurse-operator";
            // A pooled connection goes back as it is, not reset with DISCARD ALL (a round trip and
            // the server's planning of every statement again): the registry leaves no session
            // state behind, since its locks and READ ONLY are transaction-scoped. Its few statements,
            // run thousands of times, are prepared on each connection after their second use.
            builder.NoResetOnClose = true;

            // Several hosts: a replicated cluster (Patroni), where only the primary takes writes.
            // Npgsql finds it on each new connection when told to; a registry that may land on a
            // standby would fail every write there.
            if (builder.Host?.Contains(',', StringComparison.Ordinal) == true)
            {
                builder.TargetSessionAttributes ??= "primary";
                if (builder.TargetSessionAttributes is not ("primary" or "read-write"))
                {
                    throw new InvalidOperationException(
                        $"A ConnectionString with several hosts needs 'Target Session Attributes=primary' (or read-write), not '{builder.TargetSessionAttributes}': the registry writes.");
                }
            }
            if (builder.MaxAutoPrepare == 0)
            {
                builder.MaxAutoPrepare = 64;
                builder.AutoPrepareMinUsages = 2;
            }

            // Startup options apply to every session on the connection; the last -c wins, so
            // nothing in the connection string can weaken it.
            builder.Options = string.IsNullOrWhiteSpace(builder.Options)
                ? "-c synchronous_commit=on"
                : builder.Options + " -c synchronous_commit=on";
            return builder.ToString();
        }

        public override async Task<DbConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
        {
            var connection = new NpgsqlConnection(connectionString);
            try
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                return connection;
            }
            catch (NpgsqlException e) when (e is not PostgresException && e.InnerException is not TimeoutException)
            {
                // No server answered as a primary: refused or broken connections, or (several
                // hosts) only standbys reachable while one is promoted, which Npgsql reports as
                // "No suitable host was found" with nothing inside. A server's own refusal (a
                // wrong password) is a PostgresException and stays what it is; an exhausted pool
                // is a timeout, overload rather than absence.
                await connection.DisposeAsync().ConfigureAwait(false);
                throw new RegistryUnavailableException("No PostgreSQL server of the connection string answered as the primary.", e);
            }
        }

        public override async ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken) =>
            await ((NpgsqlConnection)connection).BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);

        public override bool IsUniqueViolation(DbException exception) =>
            exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

        // Transaction-scoped: released by the commit or rollback, also when the node dies mid-way.
        public override Task LockAsync(DbConnection connection, DbTransaction transaction, long key) =>
            connection.ExecuteAsync("SELECT pg_advisory_xact_lock(@key)", new { key }, transaction);
    }
}

/// <summary>
/// The registry's database could not be reached as a primary when a connection was opened: the
/// server is down or cut off, or (several hosts) a standby is being promoted. Retryable. A
/// <see cref="DbException"/>, as the driver's own was, for code that handles the registry's failures.
/// </summary>
internal sealed class RegistryUnavailableException(string message, Exception innerException) : DbException(message, innerException);
