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
        Assert.Equal(Database.Migrations().Select(m => m.Version), versions);
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
            await connection.ExecuteAsync(InsertCard, new { id = "9400000000000001", status = "active" }, transaction.Inner);
            await connection.ExecuteAsync(
                "UPDATE cards SET counter = @counter WHERE card_id = @id AND counter < @counter", new { id = "9400000000000001", counter = (long)uint.MaxValue }, transaction.Inner);
            await connection.ExecuteAsync(
                "INSERT INTO journal (entry_id, account, amount_minor, currency, reference, created_at) VALUES ('e', 'issued', @amount, 'EUR', 'r', 't')",
                new { amount = -Amount }, transaction.Inner);
            await transaction.CommitAsync();
        }

        Assert.Equal(-Amount, await connection.ExecuteScalarAsync<long>("SELECT amount_minor FROM journal"));
        Assert.Equal(uint.MaxValue, await connection.ExecuteScalarAsync<long>("SELECT counter FROM cards"));
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
    public async Task Writers_QueueInTheNode_TheNextBeginsWhenTheFirstCommits()
    {
        var database = await MigratedAsync();
        await using var first = await database.OpenAsync();
        await using var second = await database.OpenAsync();
        await using var third = await database.OpenAsync();
        var writing = await database.BeginWriteAsync(first);
        var next = database.BeginWriteAsync(second).AsTask();
        var afterNext = database.BeginWriteAsync(third).AsTask();
        await first.ExecuteAsync(InsertCard, new { id = "9400000000000002", status = "active" }, writing.Inner);
        await Task.Delay(100);
        Assert.False(next.IsCompleted); // waiting in the node's queue, not at SQLite's file lock

        await writing.CommitAsync();
        await using (var nextWrite = await next.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            Assert.Equal(1, await second.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM cards", transaction: nextWrite.Inner));
            Assert.False(afterNext.IsCompleted);
        }

        // A writer that ends without committing lets the next one begin too; ending twice releases once.
        var last = await afterNext.WaitAsync(TimeSpan.FromSeconds(10));
        await writing.DisposeAsync();
        var another = database.BeginWriteAsync(first).AsTask();
        await Task.Delay(100);
        Assert.False(another.IsCompleted);
        await last.DisposeAsync();
        await using var anotherWrite = await another.WaitAsync(TimeSpan.FromSeconds(10));
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
