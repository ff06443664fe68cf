using System.Data.Common;

namespace OpenPurse.Operator.Registry;

/// <summary>
/// The transaction of one state change (<see cref="Database.BeginWriteAsync"/>). On SQLite the
/// node's writers queue for it on an async gate, held until the commit returns: a writer waits for
/// the one before it without a thread, where SQLite's busy handler would poll the file lock with
/// sleeps growing to 100 ms (writers from other processes, a station command, still meet that
/// handler). On PostgreSQL there is no gate: row locks order the writers.
/// </summary>
internal sealed class WriteTransaction : IAsyncDisposable
{
    private SemaphoreSlim? _gate;

    private WriteTransaction(DbTransaction transaction, SemaphoreSlim? gate)
    {
        Inner = transaction;
        _gate = gate;
    }

    /// <summary>The engine's transaction, for the commands of the state change.</summary>
    public DbTransaction Inner { get; }

    /// <summary>Begins the transaction, after the writers before it when <paramref name="gate"/> is given.</summary>
    public static async ValueTask<WriteTransaction> BeginAsync(SqlDialect dialect, DbConnection connection, SemaphoreSlim? gate, CancellationToken cancellationToken)
    {
        if (gate is not null)
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return new WriteTransaction(await dialect.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false), gate);
        }
        catch
        {
            gate?.Release();
            throw;
        }
    }

    /// <summary>Commits; once it returns the change is durable and the next writer may begin.</summary>
    public Task CommitAsync(CancellationToken cancellationToken = default) => ThenReleaseAsync(Inner.CommitAsync(cancellationToken));

    public Task RollbackAsync(CancellationToken cancellationToken = default) => ThenReleaseAsync(Inner.RollbackAsync(cancellationToken));

    /// <summary>Rolls back what was not committed, and lets the next writer begin.</summary>
    public async ValueTask DisposeAsync() => await ThenReleaseAsync(Inner.DisposeAsync().AsTask()).ConfigureAwait(false);

    // The gate opens when the engine is done with the transaction, whether that worked or threw.
    private async Task ThenReleaseAsync(Task ending)
    {
        try
        {
            await ending.ConfigureAwait(false);
        }
        finally
        {
            ReleaseGate();
        }
    }

    private void ReleaseGate() => Interlocked.Exchange(ref _gate, null)?.Release();
}
