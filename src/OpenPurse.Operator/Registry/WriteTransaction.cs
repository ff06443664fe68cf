using System.Data.Common;
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

    /// <summary>Commits; once it returns the change is durable.</summary>
    /// <exception cref="ObjectDisposedException">The transaction was already committed or rolled back.</exception>
    public Task CommitAsync(CancellationToken cancellationToken = default)
    {
        End();
        return _grouped?.CommitAsync() ?? Inner.CommitAsync(cancellationToken);
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
