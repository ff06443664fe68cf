using Microsoft.Data.Sqlite;

namespace OpenPurse.Storage;

/// <summary>
/// A party's own SQLite database file in its data directory (the store's <c>store.db</c>, the
/// authorizer's <c>authorizer.db</c>): made 0600 before SQLite opens it (<see cref="PrivateFiles"/>),
/// pooled connections with <c>synchronous=FULL</c> (<see cref="SqliteSessions"/>), so that what
/// was committed survives a power cut, and WAL, set once on the file.
/// </summary>
public sealed class SqliteFile
{
    /// <summary>How long a writer waits for another one before giving up (SQLite's busy timeout).</summary>
    public const int BusyTimeoutSeconds = 30;

    private const string SessionPragmas = "PRAGMA synchronous=FULL;";

    /// <param name="dataDirectory">The party's data directory, made 0700 before.</param>
    /// <param name="fileName">The database's file name in it.</param>
    /// <param name="foreignKeys">Whether references between tables are enforced on every connection.</param>
    public SqliteFile(string dataDirectory, string fileName, bool foreignKeys = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        ConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDirectory, fileName),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = BusyTimeoutSeconds,
            ForeignKeys = foreignKeys ? true : null,
        }.ToString();
        // Before SQLite makes the file: it gives its WAL and shared-memory files the database file's mode.
        PrivateFiles.ProtectSqliteDatabase(ConnectionString);
    }

    /// <summary>The database's connection string (no secret: the file is protected by its mode).</summary>
    public string ConnectionString { get; }

    /// <summary>An open connection with the session's settings.</summary>
    public Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) =>
        SqliteSessions.OpenAsync(ConnectionString, SessionPragmas, cancellationToken);

    /// <summary>As <see cref="OpenAsync"/>; Microsoft.Data.Sqlite completes its "async" opens synchronously.</summary>
    public SqliteConnection Open() => OpenAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>
    /// Opens the database to create or bring up its schema: switches the file to WAL and reads its
    /// schema version (<c>PRAGMA user_version</c>, 0 for a new file).
    /// </summary>
    /// <param name="knownVersion">The newest schema version this program knows.</param>
    /// <param name="version">The file's schema version, at most <paramref name="knownVersion"/>.</param>
    /// <exception cref="InvalidOperationException">The file's schema is newer than this program; the message names both versions.</exception>
    public SqliteConnection OpenForSchema(int knownVersion, out long version)
    {
        var connection = Open();
        try
        {
            // WAL is a property of the database file: set once, it stays.
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA journal_mode=WAL;";
            command.ExecuteNonQuery();
            command.CommandText = "PRAGMA user_version;";
            version = (long)command.ExecuteScalar()!;
            if (version > knownVersion)
            {
                throw new InvalidOperationException(
                    $"The database {Path.GetFileName(new SqliteConnectionStringBuilder(ConnectionString).DataSource)} has schema version {version}; this program knows up to {knownVersion}.");
            }

            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }
}
