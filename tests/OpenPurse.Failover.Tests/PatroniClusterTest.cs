using System.Diagnostics;
using Npgsql;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.Failover.Tests;

/// <summary>
/// The highly available cluster keeps every acknowledged commit when its leader dies, is cut off,
/// or its synchronous standby stalls, and when a new leader dies before it has a synchronous
/// standby (then nobody else may lead). Each test starts a cluster of its own: they kill and cut members.
/// </summary>
public sealed class PatroniClusterTest(ITestOutputHelper output)
{
    private static readonly TimeSpan s_failoverTimeout = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan s_rejoinTimeout = TimeSpan.FromSeconds(45);

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public async Task A_row_written_through_the_cluster_is_read_back_and_is_on_the_synchronous_standby()
    {
        using var cluster = StartCluster();
        await using var database = await cluster.CreateDatabaseAsync();
        await CreateProbeTableAsync(database);

        await using (var connection = new NpgsqlConnection(database.ConnectionString))
        {
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO probe (id) VALUES (42)", connection);
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        Assert.Contains(42, await IdsOnAsync(database.ConnectionString));
        var leader = await cluster.LeaderAsync();
        var standby = await cluster.SynchronousStandbyAsync();
        Assert.NotNull(standby);
        Assert.NotEqual(leader, standby);
        // The commit waited for the standby's flush; its replay follows within moments, and until
        // then the standby may not know the database or the table yet either.
        var onStandby = cluster.Members.Single(m => m.Name == standby).ConnectionStringFor(database.Name);
        await Eventually(
            async () =>
            {
                try
                {
                    return (await IdsOnAsync(onStandby)).Contains(42);
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.InvalidCatalogName or PostgresErrorCodes.UndefinedTable)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(5),
            "the row replayed on the synchronous standby");
        Assert.True(await IsInRecoveryAsync(onStandby));
    }

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public Task When_the_leader_dies_a_new_one_has_every_acknowledged_row_and_the_old_one_rejoins_as_standby() =>
        LoseTheLeaderAsync("Kill", (cluster, member) => cluster.Kill(member), "restarted", (cluster, member) => cluster.Restart(member));

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public Task When_the_leader_is_cut_off_a_new_one_has_every_acknowledged_row_and_the_old_one_healed_rejoins_as_standby() =>
        LoseTheLeaderAsync("Cut", (cluster, member) => cluster.Cut(member), "healed", (cluster, member) => cluster.Heal(member));

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public async Task When_the_synchronous_standby_stalls_the_other_takes_its_role_and_the_leaders_death_loses_nothing()
    {
        using var cluster = StartCluster();
        await using var database = await cluster.CreateDatabaseAsync();
        await CreateProbeTableAsync(database);
        await using var writer = Writer.Start(database.ConnectionString);
        await writer.WaitForAcknowledgedAsync(20);

        var leader = await cluster.LeaderAsync();
        var stalled = await cluster.SynchronousStandbyAsync();
        Assert.NotNull(stalled);
        var other = cluster.Members.Single(m => m.Name != leader && m.Name != stalled).Name;
        var clock = Stopwatch.StartNew();
        cluster.Pause(stalled);
        await Eventually(async () => await cluster.SynchronousStandbyAsync() == other, TimeSpan.FromSeconds(30), $"{other} synchronous in place of the stalled {stalled}");
        output.WriteLine($"Pause of {stalled} to {other} synchronous: {clock.ElapsedMilliseconds} ms");
        await writer.WaitForAcknowledgedAsync(writer.Acknowledged.Count + 10);

        clock.Restart();
        cluster.Kill(leader);
        var successor = await cluster.WaitForNewLeaderAsync(leader, s_failoverTimeout);
        output.WriteLine($"Kill of {leader} to new leader {successor}: {clock.ElapsedMilliseconds} ms");
        // Strict synchronous mode: only the standby that had every commit may lead.
        Assert.Equal(other, successor);
        // The new leader has no standby until the stalled one runs again: commits wait for it.
        cluster.Resume(stalled);
        await writer.WaitForAcknowledgedAsync(writer.Acknowledged.Count + 10);
        await writer.StopAsync();
        await AssertAllAcknowledgedOnAsync(cluster, successor, database, writer);
    }

    [IntegrationFact(Components.Patroni, Components.Etcd, Components.PostgreSql)]
    public async Task When_the_new_leader_dies_before_it_names_a_synchronous_standby_none_leads_until_it_returns_with_every_acknowledged_row()
    {
        using var cluster = StartCluster();
        await using var database = await cluster.CreateDatabaseAsync();
        await CreateProbeTableAsync(database);
        await using var writer = Writer.Start(database.ConnectionString);
        await writer.WaitForAcknowledgedAsync(20);

        var first = await cluster.LeaderAsync();
        var second = await cluster.SynchronousStandbyAsync();
        Assert.NotNull(second);
        var third = cluster.Members.Single(m => m.Name != first && m.Name != second).Name;
        // The third cannot stream from the new leader: it never becomes its synchronous standby.
        cluster.Pause(third);
        cluster.Kill(first);
        Assert.Equal(second, await cluster.WaitForNewLeaderAsync(first, s_failoverTimeout));
        // Promoted in strict synchronous mode, the new leader's sync key names itself alone.
        Assert.Null(await cluster.SynchronousStandbyAsync());

        cluster.Kill(second);
        cluster.Resume(third);
        // The dead leader's key expires with its lease (10 s). Patroni does not guess whether the
        // third has every acknowledged commit: nobody takes the key, for twice its lifetime after.
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(35))
        {
            var leader = await cluster.CurrentLeaderAsync();
            Assert.True(leader is null || leader == second, $"{leader} took the lead that only {second} may take.");
            await Task.Delay(500);
        }

        Assert.Null(await cluster.CurrentLeaderAsync());

        cluster.Restart(second);
        clock.Restart();
        Assert.Equal(second, await cluster.WaitForNewLeaderAsync(first, s_failoverTimeout));
        output.WriteLine($"Restart of {second} to its lead again: {clock.ElapsedMilliseconds} ms");
        // The third streams from it now and is its synchronous standby: writes are acknowledged again.
        await writer.WaitForAcknowledgedAsync(writer.Acknowledged.Count + 15);
        await writer.StopAsync();
        await AssertAllAcknowledgedOnAsync(cluster, second, database, writer);
    }

    // The leader lost (killed, or cut off) while a writer writes: the new leader has every
    // acknowledged row, and the old one, back, follows it as a standby (rewound if it had more).
    private async Task LoseTheLeaderAsync(string fault, Action<PatroniCluster, string> lose, string back, Action<PatroniCluster, string> bringBack)
    {
        using var cluster = StartCluster();
        await using var database = await cluster.CreateDatabaseAsync();
        await CreateProbeTableAsync(database);
        await using var writer = Writer.Start(database.ConnectionString);
        await writer.WaitForAcknowledgedAsync(20);

        var old = await cluster.LeaderAsync();
        var clock = Stopwatch.StartNew();
        lose(cluster, old);
        var leader = await cluster.WaitForNewLeaderAsync(old, s_failoverTimeout);
        output.WriteLine($"{fault} of {old} to new leader {leader}: {clock.ElapsedMilliseconds} ms");
        // Writes go on once the remaining standby follows the new leader synchronously.
        await writer.WaitForAcknowledgedAsync(writer.Acknowledged.Count + 10);
        output.WriteLine($"{fault} to writes acknowledged again: {clock.ElapsedMilliseconds} ms");
        await writer.StopAsync();
        await AssertAllAcknowledgedOnAsync(cluster, leader, database, writer);

        bringBack(cluster, old);
        await cluster.WaitForReplicaAsync(old, s_rejoinTimeout);
        output.WriteLine($"{fault} to {old} {back} and streaming again: {clock.ElapsedMilliseconds} ms");
        Assert.True(await IsInRecoveryAsync(cluster.Members.Single(m => m.Name == old).ConnectionStringFor(database.Name)));
    }

    private PatroniCluster StartCluster()
    {
        var clock = Stopwatch.StartNew();
        var cluster = PatroniCluster.Start();
        output.WriteLine($"Cluster start-up: {clock.ElapsedMilliseconds} ms");
        return cluster;
    }

    private async Task AssertAllAcknowledgedOnAsync(PatroniCluster cluster, string leader, PostgresDatabase database, Writer writer)
    {
        var present = await IdsOnAsync(cluster.Members.Single(m => m.Name == leader).ConnectionStringFor(database.Name));
        var lost = writer.Acknowledged.Where(id => !present.Contains(id)).ToArray();
        output.WriteLine($"{writer.Acknowledged.Count} acknowledged, {writer.Failed} failed, {present.Count} rows on {leader}");
        // Every test waits for 20 acknowledged commits before its fault and for 10 more after it; a
        // writer whose 21st insert hung on the lost leader has exactly 30.
        Assert.True(writer.Acknowledged.Count >= 30, "the writer had commits acknowledged before and after the failover");
        Assert.Empty(lost);
    }

    private static async Task CreateProbeTableAsync(PostgresDatabase database)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("CREATE TABLE probe (id integer PRIMARY KEY)", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<HashSet<int>> IdsOnAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id FROM probe", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new HashSet<int>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt32(0));
        }

        return ids;
    }

    private static async Task<bool> IsInRecoveryAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
        return (bool)(await command.ExecuteScalarAsync())!;
    }

    private static async Task Eventually(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"Not within {timeout}: {what}.");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>
    /// Inserts rows 1, 2, 3, ... through the cluster's connection string, one transaction each,
    /// and remembers those whose commit was acknowledged. A failed insert may or may not have
    /// committed; its id is not used again.
    /// </summary>
    private sealed class Writer : IAsyncDisposable
    {
        private readonly string _connectionString;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<int> _acknowledged = [];
        private Task _loop = Task.CompletedTask;
        private int _failed;

        private Writer(string connectionString)
        {
            _connectionString = connectionString;
        }

        public IReadOnlyCollection<int> Acknowledged
        {
            get
            {
                lock (_acknowledged)
                {
                    return [.. _acknowledged];
                }
            }
        }

        public int Failed => Volatile.Read(ref _failed);

        public static Writer Start(string connectionString)
        {
            var writer = new Writer(connectionString);
            writer._loop = Task.Run(writer.RunAsync);
            return writer;
        }

        public async Task WaitForAcknowledgedAsync(int count)
        {
            var clock = Stopwatch.StartNew();
            while (Acknowledged.Count < count)
            {
                Assert.False(_loop.IsCompleted, "The writer stopped.");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(45), $"Fewer than {count} commits acknowledged within 45 s ({Acknowledged.Count}, {Failed} failed).");
                await Task.Delay(100);
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }

        private async Task RunAsync()
        {
            for (var id = 1; !_stop.IsCancellationRequested; id++)
            {
                try
                {
                    await using var connection = new NpgsqlConnection(_connectionString);
                    await connection.OpenAsync(_stop.Token);
                    await using var command = new NpgsqlCommand("INSERT INTO probe (id) VALUES (@id)", connection);
                    command.Parameters.AddWithValue("id", id);
                    await command.ExecuteNonQueryAsync(_stop.Token);
                    lock (_acknowledged)
                    {
                        _acknowledged.Add(id);
                    }

                    await Task.Delay(20, _stop.Token);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
                {
                    Interlocked.Increment(ref _failed);
                    await Task.Delay(200, CancellationToken.None);
                }
            }
        }
    }
}
