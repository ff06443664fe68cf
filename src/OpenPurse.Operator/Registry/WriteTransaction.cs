using System.Data.Common;
using Npgsql;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The transaction of one state change (<see cref="Database.BeginWriteAsync(DbConnection, CancellationToken)"/>):
/// its commands run on <see cref="Connection"/> in <see cref="Inner"/>. On SQLite that is the
/// node's turn in its commit group (<see cref="SqliteCommitGroup"/>): the node's writers take
/// turns without a thread and share their flushes. On PostgreSQL it is a transaction of its own;
/// row locks order the writers, and the server flushes concurrent commits together by itself.
/// </summary>
internal sealed class WriteTransaction : IAsyncDisposable
{
    private readonly SqliteWrite? _grouped;
    private readonly bool _ownsConnection;
    private bool _ended;

    /// <summary>A transaction of its own (PostgreSQL), on the caller's connection or on one it closes when disposed.</summary>
    public WriteTransaction(DbConnection connection, DbTransaction transaction, bool ownsConnection = false)
    {
        Connection = connection;
        Inner = transaction;
        _ownsConnection = ownsConnection;
    }

    /// <summary>A turn in a commit group (SQLite).</summary>
    public WriteTransaction(SqliteWrite grouped)
        : this(grouped.Connection, grouped.Transaction) => _grouped = grouped;

    /// <summary>The connection the state change's commands run on: on SQLite not the caller's own.</summary>
    public DbConnection Connection { get; }

    /// <summary>The engine's transaction, for the commands of the state change.</summary>
    public DbTransaction Inner { get; }

    /// <summary>Commits; once it returns the change is durable (on PostgreSQL with synchronous standbys: on a standby too).</summary>
    /// <param name="cancellationToken">Not passed to PostgreSQL's COMMIT, see remarks.</param>
    /// <exception cref="ObjectDisposedException">The transaction was already committed or rolled back.</exception>
    /// <exception cref="RegistryUnavailableException">PostgreSQL committed locally but did not confirm that a synchronous standby has the commit.</exception>
    /// <remarks>
    /// With synchronous replication PostgreSQL writes the commit locally, then waits for the
    /// standby. A COMMIT cancelled in that wait (by the client, or by the driver at its command
    /// timeout) stops waiting and reports success with a warning: committed on this server only,
    /// visible, yet lost if it dies before the standby catches up. So COMMIT is never cancelled
    /// from here (a wallet hanging up must not end the wait), and a warning during COMMIT means
    /// the commit is not acknowledged: the caller gets a retryable failure and the request is sent
    /// again, which every request of the protocol allows.
    /// </remarks>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        End();
        if (_grouped is not null)
        {
            await _grouped.CommitAsync().ConfigureAwait(false);
            return;
        }

        if (Connection is not NpgsqlConnection postgres)
        {
            await Inner.CommitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        PostgresNotice? warning = null;
        void OnNotice(object? sender, NpgsqlNoticeEventArgs e) => warning ??= e.Notice.InvariantSeverity == "WARNING" ? e.Notice : null;
        postgres.Notice += OnNotice;
        try
        {
            await Inner.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            postgres.Notice -= OnNotice;
        }

        if (warning is not null)
        {
            throw new RegistryUnavailableException(
                $"PostgreSQL warned during COMMIT ({warning.SqlState}): the commit is not confirmed on a synchronous standby.", new PostgresException(warning.MessageText, warning.Severity, warning.InvariantSeverity, warning.SqlState));
        }
    }

    /// <summary>Undoes the state change.</summary>
    /// <exception cref="ObjectDisposedException">The transaction was already committed or rolled back.</exception>
    public Task RollbackAsync(CancellationToken cancellationToken = default)
    {
        End();
        if (_grouped is null)
        {
            return Inner.RollbackAsync(cancellationToken);
        }

        _grouped.Rollback();
        return Task.CompletedTask;
    }

    /// <summary>Rolls back what was not committed, and lets the next writer take its turn.</summary>
    public async ValueTask DisposeAsync()
    {
        _ended = true;
        if (_grouped is not null)
        {
            await _grouped.DisposeAsync().ConfigureAwait(false);
            return;
        }

        await Inner.DisposeAsync().ConfigureAwait(false);
        if (_ownsConnection)
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void End()
    {
        ObjectDisposedException.ThrowIf(_ended, this);
        _ended = true;
    }
}
