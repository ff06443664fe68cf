using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

// The variants of the randomized run on one engine each, apart from RandomizedRunTest itself: the
// highly available variant (OpenPurse.Failover.Tests) compiles the run's files without these.

/// <summary>The randomized runs take the machine's cores for a minute or two each: one after the other, not side by side.</summary>
[CollectionDefinition(Name)]
public sealed class RandomizedRuns
{
    public const string Name = "Randomized runs";
}

/// <summary>The randomized run on SQLite.</summary>
[Collection(RandomizedRuns.Name)]
public sealed class RandomizedRunOnSqliteTest(ITestOutputHelper output) : RandomizedRunTest(output)
{
    [Fact]
    public Task Randomized_SeededFaults_InvariantHolds() => RunAsync(defaultSeed: 20_250_611, postgresConnectionString: null);
}

/// <summary>The randomized run on PostgreSQL.</summary>
[Collection(RandomizedRuns.Name)]
public sealed class RandomizedRunOnPostgreSqlTest(SharedPostgresCluster postgres, ITestOutputHelper output) : RandomizedRunTest(output), IClassFixture<SharedPostgresCluster>
{
    [IntegrationFact(Components.PostgreSql)]
    public async Task Randomized_SeededFaults_InvariantHolds()
    {
        await using var database = await postgres.CreateDatabaseAsync();
        await RunAsync(defaultSeed: 7_340_129, postgresConnectionString: database.ConnectionString);
    }
}
