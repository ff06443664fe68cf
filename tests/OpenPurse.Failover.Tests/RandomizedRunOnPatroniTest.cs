using OpenPurse.EndToEnd.Tests.Faults;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.Failover.Tests;

/// <summary>
/// The randomized run (<see cref="RandomizedRunTest"/>) on a highly available registry: PostgreSQL
/// under Patroni, whose primary is killed up to <see cref="PrimaryKills.KillsMax"/> times among
/// the run's other faults (<see cref="PrimaryKills"/>). Requests during a failover meet
/// <c>503 operator.busy</c>: a wallet's or the store's failure then is an outcome, a 500 or any
/// other exception a finding. Before the final phase the cluster has a leader again and every
/// killed member streams from it; the invariant is then read from the new primary.
/// </summary>
/// <remarks>
/// Fewer operations than on one engine (<c>OPENPURSE_FAULT_PURCHASES</c> still says): each
/// failover stalls the run for seconds, and the cluster's six processes share the machine.
/// </remarks>
[Collection(RandomizedRunOnPatroni.Name)]
public sealed class RandomizedRunOnPatroniTest : RandomizedRunTest, IClassFixture<SharedPatroniCluster>
{
    private const int Operations = 150;

    private readonly SharedPatroniCluster _patroni;
    private readonly ITestOutputHelper _output;

    public RandomizedRunOnPatroniTest(SharedPatroniCluster patroni, ITestOutputHelper output)
        : base(output)
    {
        _patroni = patroni;
        _output = output;
    }

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public async Task Randomized_SeededFaultsAndPrimaryKills_InvariantHolds()
    {
        var cluster = _patroni.Cluster;
        await using var database = await cluster.CreateDatabaseAsync();
        await RunAsync(defaultSeed: 4_061_907, database.ConnectionString, new PrimaryKills(cluster, _output), Operations);
    }
}

/// <summary>The run kills the cluster's members and takes the machine's cores: no other test of this project beside it.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RandomizedRunOnPatroni
{
    public const string Name = "Randomized run on Patroni";
}
