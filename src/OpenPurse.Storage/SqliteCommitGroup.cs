using Microsoft.Data.Sqlite;

namespace OpenPurse.Storage;

/// <summary>
/// Group commit on SQLite. A process's writers take turns on one connection, each in a savepoint
/// of one engine transaction, and one durable COMMIT ends the group when no writer is waiting for
/// its turn (or the group is full): one flush where each change used to pay its own, and the WAL
/// pages the changes share written once. A writer's <see cref="SqliteWrite.CommitAsync"/> returns
/// only after the flush that holds its change.
/// </summary>
/// <remarks>
/// <para>
/// The writers wait for their turn in the process, without a thread. Waiting at SQLite's file lock
/// instead costs a thread per writer: SQLite's busy handler sleeps up to 100 ms between tries, and
/// Microsoft.Data.Sqlite's own retry 150 ms, which starves a small thread pool under load.
/// Writers in other processes still meet the file lock, and wait at it.
/// </para>
/// <para>
/// A writer sees the changes of the writers before it in its group as if they had committed, and
/// may decide on them: that is safe because the group commits or fails as one, and no writer
/// learns that its change is kept before the flush. A writer that rolls back undoes its savepoint
/// only, and ends the group (see <see cref="SqliteWrite.Rollback"/>). If the engine's transaction itself is lost (an I/O error, a full disk), every writer of
/// the group gets the error and none of their changes is kept. So a writer's commands must not be
/// cancellable: SQLite interrupts a statement by rolling back its transaction, the group's.
/// </para>
/// </remarks>
/// <param name="open">Opens a connection with the session's durable settings.</param>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Lives as long as its process; a SemaphoreSlim whose AvailableWaitHandle is never read holds no handle.")]
public sealed class SqliteCommitGroup(Func<CancellationToken, Task<SqliteConnection>> open)
{
    /// <summary>Changes in one group at most: bounds how long the first of them waits for its flush.</summary>
    public const int MembersMax = 64;

    // One writer at a time. Waiting for a turn is not cancellable: a writer hands its turn on only
    // when one waits, and relies on it to take the turn (and to end the group if it is the last).
    private readonly SemaphoreSlim _turn = new(1, 1);

    private int _waiting;
    private Group? _open;

    /// <summary>Waits for this process's turn to write, then begins a savepoint in the open group.</summary>
    /// <param name="cancellationToken">Cancels opening a new group's connection, not the wait for the turn.</param>
    public async ValueTask<SqliteWrite> BeginAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _waiting);
        await _turn.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        Interlocked.Decrement(ref _waiting);
        Group? group = null;
        try
        {
            group = _open ??= await Group.BeginAsync(open, cancellationToken).ConfigureAwait(false);
            return new SqliteWrite(this, group, group.Save());
        }
        catch (Exception e) when (group is not null)
        {
            Fail(group, e);
            throw;
        }
        catch
        {
            _turn.Release();
            throw;
        }
    }

    /// <summary>Keeps the writer's savepoint in the group, and returns once the group is durable.</summary>
    internal async Task CommitAsync(Group group, string savepoint)
    {
        try
        {
            group.Transaction.Release(savepoint);
            group.Members++;
        }
        catch (Exception e)
        {
            Fail(group, e);
            throw;
        }

        EndTurn(group, flush: false);
        await group.Durable.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Undoes the writer's savepoint, and commits what the group holds. A writer often rolls back
    /// because what it read before its turn had changed meanwhile, and reads again: what changed
    /// must then be committed, or a writer whose group never ends would read the same stale state
    /// for ever. Never throws: if the engine's transaction is gone, so is the writer's change, and
    /// the group's other writers are told.
    /// </summary>
    internal void Rollback(Group group, string savepoint)
    {
        try
        {
            group.Transaction.Rollback(savepoint);
            group.Transaction.Release(savepoint);
        }
        catch (Exception e)
        {
            Fail(group, e);
            return;
        }

        EndTurn(group, flush: group.Members > 0);
    }

    // Hands the turn to the next writer, or, when nobody waits, the group is full or a flush is
    // asked for, commits the group.
    private void EndTurn(Group group, bool flush)
    {
        if (!flush && Volatile.Read(ref _waiting) > 0 && group.Members < MembersMax)
        {
            _turn.Release();
            return;
        }

        _open = null;
        try
        {
            if (group.Members > 0)
            {
                group.Transaction.Commit();
            }

            group.Durable.TrySetResult();
        }
        catch (Exception e)
        {
            group.Durable.TrySetException(e);
        }
        finally
        {
            group.Dispose();
            _turn.Release();
        }
    }

    // The engine's transaction is gone: none of the group's changes is kept, and each writer is told.
    private void Fail(Group group, Exception error)
    {
        _open = null;
        group.Durable.TrySetException(new InvalidOperationException("A group of commits was lost; none of its changes was kept.", error));
        try
        {
            group.Dispose();
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <summary>One engine transaction and the writers whose savepoints it holds.</summary>
    internal sealed class Group : IDisposable
    {
        private int _savepoints;

        private Group(SqliteConnection connection, SqliteTransaction transaction)
        {
            Connection = connection;
            Transaction = transaction;
        }

        public SqliteConnection Connection { get; }

        public SqliteTransaction Transaction { get; }

        /// <summary>Writers whose savepoints the group keeps.</summary>
        public int Members { get; set; }

        public TaskCompletionSource Durable { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static async Task<Group> BeginAsync(Func<CancellationToken, Task<SqliteConnection>> open, CancellationToken cancellationToken)
        {
            var connection = await open(cancellationToken).ConfigureAwait(false);
            try
            {
                // BEGIN IMMEDIATE: the database's write lock for the whole group.
                return new Group(connection, connection.BeginTransaction(deferred: false));
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        public string Save()
        {
            var name = $"w{++_savepoints}";
            Transaction.Save(name);
            return name;
        }

        public void Dispose()
        {
            try
            {
                // Rolls back what is left; throws if the engine already ended the transaction.
                Transaction.Dispose();
            }
            catch (SqliteException)
            {
            }
            finally
            {
                Connection.Dispose();
            }
        }
    }
}

/// <summary>
/// One writer's turn in a <see cref="SqliteCommitGroup"/>: its commands run on
/// <see cref="Connection"/> in <see cref="Transaction"/>, and it ends by <see cref="CommitAsync"/>
/// or by being disposed, which rolls back what was not committed.
/// </summary>
public sealed class SqliteWrite : IAsyncDisposable
{
    private readonly SqliteCommitGroup _commits;
    private readonly SqliteCommitGroup.Group _group;
    private readonly string _savepoint;
    private bool _ended;

    internal SqliteWrite(SqliteCommitGroup commits, SqliteCommitGroup.Group group, string savepoint)
    {
        _commits = commits;
        _group = group;
        _savepoint = savepoint;
    }

    /// <summary>The group's connection: the writer's commands run on it.</summary>
    public SqliteConnection Connection => _group.Connection;

    /// <summary>The group's transaction, for the writer's commands; never to be committed by them.</summary>
    public SqliteTransaction Transaction => _group.Transaction;

    /// <summary>Keeps the change; returns once it is durable. Not cancellable: once the change is in the group, its flush decides.</summary>
    /// <exception cref="ObjectDisposedException">The write already ended.</exception>
    public Task CommitAsync()
    {
        End();
        return _commits.CommitAsync(_group, _savepoint);
    }

    /// <summary>Undoes the change and ends the turn.</summary>
    /// <exception cref="ObjectDisposedException">The write already ended.</exception>
    public void Rollback()
    {
        End();
        _commits.Rollback(_group, _savepoint);
    }

    /// <summary>Rolls back what was not committed, and lets the next writer take its turn.</summary>
    public ValueTask DisposeAsync()
    {
        if (!_ended)
        {
            Rollback();
        }

        return ValueTask.CompletedTask;
    }

    private void End()
    {
        ObjectDisposedException.ThrowIf(_ended, this);
        _ended = true;
    }
}
