using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace OpenPurse.Storage;

/// <summary>
/// Opens pooled SQLite connections with a process's session settings. The settings are the
/// engine connection's, and the pool keeps engine connections open between uses: they are set on
/// the first open of each, not on every open (three PRAGMAs parsed and run per request before).
/// </summary>
public static class SqliteSessions
{
    private static readonly ConditionalWeakTable<SQLitePCL.sqlite3, string> s_configured = new();

    /// <summary>An open connection on which <paramref name="pragmas"/> have run.</summary>
    /// <param name="connectionString">The database, with pooling on for the settings to be kept.</param>
    /// <param name="pragmas">The session's PRAGMA statements; a connection keeps one set, so a process uses one.</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    public static async Task<SqliteConnection> OpenAsync(string connectionString, string pragmas, CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var engine = connection.Handle!;
            if (!s_configured.TryGetValue(engine, out var applied) || !ReferenceEquals(applied, pragmas))
            {
                using var command = connection.CreateCommand();
                command.CommandText = pragmas;
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                s_configured.AddOrUpdate(engine, pragmas);
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
