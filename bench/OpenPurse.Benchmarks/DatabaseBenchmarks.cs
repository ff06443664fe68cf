using BenchmarkDotNet.Attributes;
using Dapper;
using Microsoft.Data.Sqlite;
using OpenPurse.Operator;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;

namespace OpenPurse.Benchmarks;

/// <summary>
/// One registry round trip on SQLite through the operator's <see cref="Database"/>, each on a
/// connection from the pool as every request opens one (with the session PRAGMAs that run at each
/// open): a card lookup by key, as round trip 1 reads the card; a write transaction that posts one
/// journal entry and commits durably, as every state change does; the same commit without
/// waiting for the disk, so that <see cref="DurableCommit"/> − <see cref="CommitWithoutFlush"/> is
/// what the flush costs; and sixteen such writers at once through the node's commit groups.
/// Beside them, the card lookup on an open connection as every statement runs now (a new command
/// that SQLite parses and plans) and as a kept, prepared statement would: what a statement cache
/// would save per statement.
/// </summary>
/// <remarks>
/// The database is the operator's own, migrated, in a temporary directory on the machine's disk:
/// the numbers are this disk's. The journal grows by one entry per commit, as the operator's does.
/// </remarks>
[MemoryDiagnoser]
public class DatabaseBenchmarks
{
    private const string CardId = "9400001234567890";
    private const long CardCounter = 42;
    private const int ConcurrentWriters = 16;

    // PRAGMA synchronous = FULL reads back as 2 (sqlite.org/pragma.html#pragma_synchronous).
    private const long SynchronousFull = 2;

    private const string CardLookup = "SELECT counter FROM cards WHERE card_id = @id";

    private string _directory = "";
    private Database? _database;
    private long _entrySequence;
    private SqliteConnection? _open;
    private SqliteCommand? _prepared;

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup()
    {
        _prepared?.Dispose();
        _open?.Dispose();
        // Pooled connections keep the database open; the directory goes only once they are closed.
        SqliteConnection.ClearAllPools();
        if (_directory.Length > 0)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>Open a pooled connection (and its PRAGMAs), one SELECT by primary key.</summary>
    [Benchmark]
    public async Task<long> OpenAndSelect()
    {
        await using var connection = await _database!.OpenAsync().ConfigureAwait(false);
        return await connection.QuerySingleAsync<long>(CardLookup, new { id = CardId }).ConfigureAwait(false);
    }

    /// <summary>The card lookup on an open connection through Dapper: a new command, parsed and planned by SQLite each time.</summary>
    [Benchmark]
    public long SelectParsedEachTime() => _open!.QuerySingle<long>(CardLookup, new { id = CardId });

    /// <summary>The same lookup on a command kept with its statement prepared: only binding and stepping.</summary>
    [Benchmark]
    public long SelectPrepared()
    {
        _prepared!.Parameters[0].Value = CardId;
        return (long)_prepared.ExecuteScalar()!;
    }

    /// <summary>Open, BEGIN IMMEDIATE, one journal entry (two rows), COMMIT with synchronous = FULL: on disk when it returns.</summary>
    [Benchmark]
    public Task DurableCommit() => CommitAsync(flush: true);

    /// <summary>The same with synchronous = NORMAL for this connection: the WAL is written and flushed only at checkpoints (the operator never runs so).</summary>
    [Benchmark]
    public Task CommitWithoutFlush() => CommitAsync(flush: false);

    private async Task SetupAsync()
    {
        _directory = Directory.CreateTempSubdirectory("openpurse-database-").FullName;
        _database = Database.Open(new OperatorOptions { DataDirectory = _directory }, _directory);
        await _database.MigrateAsync().ConfigureAwait(false);
        await using (var connection = await _database.OpenAsync().ConfigureAwait(false))
        {
            await connection.ExecuteAsync(
                "INSERT INTO cards (card_id, key_version, status, counter, issued_at) VALUES (@id, 1, 'active', @counter, @now)",
                new { id = CardId, counter = CardCounter, now = OpenPurse.Storage.StoredTime.Format(DateTimeOffset.UtcNow) }).ConfigureAwait(false);

            // The commits measured must be the operator's durable ones: WAL, fully synchronous.
            Check.That(await connection.QuerySingleAsync<string>("PRAGMA journal_mode").ConfigureAwait(false) == "wal", "the registry is in WAL mode");
            Check.That(await connection.QuerySingleAsync<long>("PRAGMA synchronous").ConfigureAwait(false) == SynchronousFull, "the registry's sessions are synchronous = FULL");
        }

        _open = (SqliteConnection)await _database.OpenAsync().ConfigureAwait(false);
        _prepared = _open.CreateCommand();
        _prepared.CommandText = CardLookup;
        _prepared.Parameters.Add("@id", SqliteType.Text);
        _prepared.Prepare();
        Check.That(await OpenAndSelect().ConfigureAwait(false) == CardCounter, "the card's counter reads back");
        Check.That(SelectParsedEachTime() == CardCounter && SelectPrepared() == CardCounter, "the card's counter reads back on the open connection");
        await DurableCommit().ConfigureAwait(false);
        await CommitWithoutFlush().ConfigureAwait(false);
        await SixteenWritersGrouped().ConfigureAwait(false);
        await using (var connection = await _database.OpenAsync().ConfigureAwait(false))
        {
            // Both entries are there and balance; the pool gave this connection back with FULL again.
            Check.That(await connection.QuerySingleAsync<long>("SELECT COUNT(*) FROM journal").ConfigureAwait(false) == 2 * (2 + ConcurrentWriters), "every entry of two lines is committed");
            Check.That(await connection.QuerySingleAsync<long>("SELECT SUM(amount_minor) FROM journal").ConfigureAwait(false) == 0, "the journal balances");
            Check.That(await connection.QuerySingleAsync<long>("PRAGMA synchronous").ConfigureAwait(false) == SynchronousFull, "an opened connection is synchronous = FULL again");
        }
    }

    /// <summary>Sixteen writers at once through the node's commit groups: the time for all sixteen, to set against sixteen <see cref="DurableCommit"/>s.</summary>
    [Benchmark]
    public Task SixteenWritersGrouped() => Task.WhenAll(Enumerable.Range(0, ConcurrentWriters).Select(async _ =>
    {
        await Task.Yield();
        await using var write = await _database!.BeginWriteAsync().ConfigureAwait(false);
        await PostOneCentAsync(write.Connection, write.Inner, Interlocked.Increment(ref _entrySequence)).ConfigureAwait(false);
        await write.CommitAsync().ConfigureAwait(false);
    }));

    // One state change's worth of writing on a connection of its own, outside the commit groups,
    // so that the flush can be switched off for it alone and switched on again after.
    private async Task CommitAsync(bool flush)
    {
        await using var connection = (SqliteConnection)await _database!.OpenAsync().ConfigureAwait(false);
        if (!flush)
        {
            await connection.ExecuteAsync("PRAGMA synchronous = NORMAL").ConfigureAwait(false);
        }

        try
        {
            await using var transaction = connection.BeginTransaction(deferred: false);
            await PostOneCentAsync(connection, transaction, ++_entrySequence).ConfigureAwait(false);
            await transaction.CommitAsync().ConfigureAwait(false);
        }
        finally
        {
            // The pool keeps the engine connection, and the registry sets its session once.
            await connection.ExecuteAsync("PRAGMA synchronous = FULL").ConfigureAwait(false);
        }
    }

    // A balanced entry of one cent from a card to a store.
    private static Task PostOneCentAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, long sequence) =>
        Journal.PostAsync(connection, transaction, $"bench-{sequence}", DateTimeOffset.UtcNow,
            new JournalEntry(Account.Card(CardId), Account.Store("bench-store"), new Money(1, Currency.Eur)));
}
