using System.Data.Common;
using Dapper;
using Microsoft.Data.Sqlite;
using OpenPurse.Operator.Registry;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>The registry's database on each engine: migrations, the dialect's error mapping, 64-bit amounts.</summary>
public abstract class RegistryDatabaseTest : IAsyncLifetime
{
    /// <summary>Operator nodes starting at once on one database.</summary>
    private const int NodesStartingTogether = 4;

    private protected const string InsertCard = "INSERT INTO cards (card_id, key_version, status, counter, issued_at) VALUES (@id, 1, @status, 0, '2026-01-01T00:00:00.000Z')";

    /// <summary>A connection string to a new, empty database on this class's engine.</summary>
    private protected abstract Task<string> CreateEmptyAsync();

    private protected abstract SqlDialect Dialect { get; }

    public Task InitializeAsync() => Task.CompletedTask;

    public abstract Task DisposeAsync();

    [SuiteFact]
    public async Task MigrateAsync_NodesStartingTogether_ApplyEachMigrationOnce()
    {
        var connectionString = await CreateEmptyAsync();
        var nodes = Enumerable.Range(0, NodesStartingTogether).Select(_ => new Database(Dialect, connectionString)).ToArray();

        await Task.WhenAll(nodes.Select(node => node.MigrateAsync()));
        await nodes[0].MigrateAsync();

        await using var connection = await nodes[0].OpenAsync();
        var versions = await connection.QueryAsync<long>("SELECT version FROM schema_migrations ORDER BY version");
        Assert.Equal(Database.Migrations(Dialect).Select(m => m.Version), versions);
    }

    [SuiteFact]
    public async Task IsUniqueViolation_DuplicateKey_TrueAndOtherConstraints_False()
    {
        var database = await MigratedAsync();
        await using var connection = await database.OpenAsync();
        await connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" });

        var duplicate = await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" }));
        var check = await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync(InsertCard, new { id = "9400000000000002", status = "lost" }));
        var foreignKey = await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync(
            "INSERT INTO card_purses (card_id, currency, balance_minor) VALUES ('9400000000000003', 'EUR', 0)"));

        Assert.True(database.IsUniqueViolation(duplicate));
        Assert.False(database.IsUniqueViolation(check));
        Assert.False(database.IsUniqueViolation(foreignKey));
    }

    [SuiteFact]
    public async Task AmountsAndCounters_BeyondThirtyTwoBits_ReadBackExactly()
    {
        const long Amount = (long)int.MaxValue * 3;
        var database = await MigratedAsync();
        await using var connection = await database.OpenAsync();
        await using (var transaction = await database.BeginWriteAsync(connection))
        {
            await transaction.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" }, transaction.Inner);
            await transaction.Connection.ExecuteAsync(
                "UPDATE cards SET counter = @counter WHERE card_id = @id AND counter < @counter", new { id = "9400000000000001", counter = (long)uint.MaxValue }, transaction.Inner);
            await transaction.Connection.ExecuteAsync(
                "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES ('e', 'issued', @amount, 'EUR', 'r', 't')",
                new { amount = -Amount }, transaction.Inner);
            await transaction.CommitAsync();
        }

        Assert.Equal(-Amount, await connection.ExecuteScalarAsync<long>("SELECT amount_minor FROM journal"));
        Assert.Equal(uint.MaxValue, await connection.ExecuteScalarAsync<long>("SELECT counter FROM cards"));
    }

    [SuiteFact]
    public async Task AuditTrail_UpdateDeleteAndTruncate_RefusedByTheDatabase_RowStaysAsWritten()
    {
        var database = await MigratedAsync();
        var trail = new AuditTrail(database, TimeProvider.System);
        await trail.AppendAsync("admin", "administrator", "card.block", "•••• 0001", 204, null, "127.0.0.1", CancellationToken.None);
        await using var connection = await database.OpenAsync();

        await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync("UPDATE admin_audit SET actor = 'someone else'"));
        await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync("DELETE FROM admin_audit"));
        await Assert.ThrowsAnyAsync<DbException>(() => connection.ExecuteAsync(Dialect == SqlDialect.Sqlite ? "DELETE FROM admin_audit WHERE 1" : "TRUNCATE admin_audit"));

        var row = Assert.Single(await trail.ReadAsync(10, CancellationToken.None));
        Assert.Equal(("admin", "administrator", "card.block", "•••• 0001", 204L), (row.Actor, row.Role, row.Action, row.Target, row.Status));
        await trail.AppendAsync("admin", "administrator", "store.register", "shop", 200, null, "127.0.0.1", CancellationToken.None);
        Assert.Equal(["store.register", "card.block"], (await trail.ReadAsync(10, CancellationToken.None)).Select(e => e.Action));
    }

    private protected async Task<Database> MigratedAsync()
    {
        var database = new Database(Dialect, await CreateEmptyAsync());
        await database.MigrateAsync();
        return database;
    }
}

/// <summary>The registry on SQLite, a file in a temporary directory.</summary>
public sealed class RegistryDatabaseOnSqliteTest : RegistryDatabaseTest
{
    private readonly string _directory = Directory.CreateTempSubdirectory("openpurse-registry-").FullName;

    private protected override SqlDialect Dialect => SqlDialect.Sqlite;

    public override Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private protected override Task<string> CreateEmptyAsync() =>
        Task.FromResult(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, $"{Guid.NewGuid():N}.db") }.ToString());

    [SuiteFact]
    public async Task Writers_TakeTurnsInTheNode_AndCommitAsOneGroup()
    {
        var database = await MigratedAsync();
        await using var reader = await database.OpenAsync();
        var first = await database.BeginWriteAsync(reader);
        var second = database.BeginWriteAsync(reader).AsTask();
        await first.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" }, first.Inner);
        await Task.Delay(100);
        Assert.False(second.IsCompleted); // waiting for its turn in the node, not at SQLite's file lock

        // Another waits: the first hands its turn on, and its commit returns with the group's flush.
        var firstCommitted = first.CommitAsync();
        var secondWrite = await second.WaitAsync(TimeSpan.FromSeconds(10));
        var third = database.BeginWriteAsync(reader).AsTask();
        Assert.Equal(1, await secondWrite.Connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards", transaction: secondWrite.Inner));
        await secondWrite.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000002", status = "active" }, secondWrite.Inner);
        var secondCommitted = secondWrite.CommitAsync();

        await using (var thirdWrite = await third.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            await thirdWrite.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000003", status = "active" }, thirdWrite.Inner);
            Assert.False(firstCommitted.IsCompleted || secondCommitted.IsCompleted);
            Assert.Equal(0, await reader.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards")); // nothing is visible before the flush
            // Ends without committing: its own change is undone, and the group commits.
        }

        await Task.WhenAll(firstCommitted, secondCommitted).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(["9400000000000001", "9400000000000002"], await reader.QueryAsync<string>("SELECT card_id FROM cards ORDER BY card_id"));

        // The next writer begins a new group at once.
        await using var next = await database.BeginWriteAsync(reader).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [SuiteFact]
    public async Task Writer_RollingBackWhileOthersWait_CommitsItsGroupFirst_SoThatWhatItReadsAgainIsCommitted()
    {
        var (database, reader, firstCommitted, secondWrite) = await SecondsTurnAfterTheFirstCommittedAsync();
        await using var _ = reader;
        var third = database.BeginWriteAsync(reader).AsTask();

        await secondWrite.RollbackAsync();

        // The first is durable although the third still waits for its turn.
        await firstCommitted.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, await reader.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards"));
        await using var thirdWrite = await third.WaitAsync(TimeSpan.FromSeconds(10));
        await secondWrite.DisposeAsync();
    }

    [SuiteFact]
    public async Task Writers_WhoseGroupIsLost_AllFail_AndNoneOfTheirChangesIsKept()
    {
        var (database, reader, firstCommitted, second) = await SecondsTurnAfterTheFirstCommittedAsync();
        await using var _ = reader;

        // The engine's transaction ends under the second writer, as an I/O error or a full disk would end it.
        await using (var secondWrite = second)
        {
            await secondWrite.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000002", status = "active" }, secondWrite.Inner);
            await secondWrite.Connection.ExecuteAsync("ROLLBACK", transaction: secondWrite.Inner);
            await Assert.ThrowsAnyAsync<Exception>(() => secondWrite.CommitAsync());
        }

        await Assert.ThrowsAsync<InvalidOperationException>(() => firstCommitted.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, await reader.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards"));

        // The node writes on in a new group.
        await using (var after = await database.BeginWriteAsync(reader).AsTask().WaitAsync(TimeSpan.FromSeconds(10)))
        {
            await after.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000003", status = "active" }, after.Inner);
            await after.CommitAsync();
        }

        Assert.Equal(1, await reader.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards"));
    }

    // A first writer inserts a card and commits while a second waits: the second has the turn in
    // the same group, and the first's commit waits for the group's flush.
    private async Task<(Database Database, DbConnection Reader, Task FirstCommitted, WriteTransaction Second)> SecondsTurnAfterTheFirstCommittedAsync()
    {
        var database = await MigratedAsync();
        var reader = await database.OpenAsync();
        var first = await database.BeginWriteAsync(reader);
        var second = database.BeginWriteAsync(reader).AsTask();
        await first.Connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" }, first.Inner);
        var firstCommitted = first.CommitAsync();
        return (database, reader, firstCommitted, await second.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [SuiteFact]
    public async Task ManyConcurrentWriters_EachCommittedChange_IsThereWhenItsCommitReturns()
    {
        const int Writers = 200;
        var database = await MigratedAsync();
        await using var reader = await database.OpenAsync();
        var seen = await Task.WhenAll(Enumerable.Range(1, Writers).Select(async i =>
        {
            await Task.Yield();
            var id = $"94000000{i:D8}";
            await using var write = await database.BeginWriteAsync(reader);
            await write.Connection.ExecuteAsync(InsertCard, new { id, status = "active" }, write.Inner);
            if (i % 10 == 0)
            {
                return true; // every tenth rolls back
            }

            await write.CommitAsync();
            await using var own = await database.OpenAsync();
            return await own.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards WHERE card_id = @id", new { id }) == 1;
        }));

        Assert.All(seen, Assert.True);
        Assert.Equal(Writers - (Writers / 10), await reader.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards"));
    }
}

/// <summary>The registry on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class RegistryDatabaseOnPostgreSqlTest(SharedPostgresCluster postgres) : RegistryDatabaseTest, IClassFixture<SharedPostgresCluster>
{
    private readonly List<PostgresDatabase> _databases = [];

    private protected override SqlDialect Dialect => SqlDialect.PostgreSql;

    public override async Task DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }
    }

    [IntegrationFact(Components.PostgreSql)]
    public async Task Sessions_DatabaseDefaultIsAsynchronousCommit_StillCommitSynchronously()
    {
        var connectionString = await CreateEmptyAsync();
        await postgres.Cluster.ExecuteAsync($"ALTER DATABASE {_databases[^1].Name} SET synchronous_commit = off");

        await using var connection = await new Database(SqlDialect.PostgreSql, connectionString).OpenAsync();

        Assert.Equal("on", await connection.ExecuteScalarAsync<string>("SHOW synchronous_commit"));
    }

    [IntegrationFact(Components.PostgreSql)]
    public async Task Migrations_OnPostgreSql_MoneyAndCountersAreBigintAndBytesAreBytea()
    {
        var database = await MigratedAsync();
        await using var connection = await database.OpenAsync();

        var types = (await connection.QueryAsync<(string Table, string Column, string Type)>(
            """
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'public' AND (data_type IN ('integer', 'smallint', 'bigint', 'bytea'))
            """)).ToDictionary(c => $"{c.Table}.{c.Column}", c => c.Type);

        Assert.Equal("bigint", types["journal.amount_minor"]);
        Assert.Equal("bigint", types["settlements.amount_minor"]);
        Assert.Equal("bigint", types["card_purses.balance_minor"]);
        Assert.Equal("bigint", types["cards.counter"]);
        Assert.Equal("bytea", types["settlements.card_greeting"]);
        Assert.DoesNotContain("integer", types.Values);
    }

    private protected override async Task<string> CreateEmptyAsync()
    {
        var database = await postgres.CreateDatabaseAsync();
        _databases.Add(database);
        return database.ConnectionString;
    }
}
