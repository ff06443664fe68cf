using Dapper;
using Npgsql;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A commit that PostgreSQL wrote locally but no synchronous standby confirmed is not acknowledged
/// by the registry: its COMMIT, cancelled by the driver's command timeout, comes back as success
/// with a warning, and the registry turns that warning into a retryable failure (503
/// operator.busy). Here the server waits for a standby that never connects, as a primary cut off
/// from its standbys does.
/// </summary>
public sealed class UnconfirmedCommitTest
{
    [IntegrationFact(Components.PostgreSql)]
    public async Task CommitWaitingForAStandbyPastTheCommandTimeout_IsNotAcknowledged_ThoughPostgreSqlKeptItLocally()
    {
        // A private cluster: the standby it waits for is a server-wide setting.
        using var cluster = PostgresCluster.Start();
        await using var empty = await cluster.CreateDatabaseAsync();
        var connectionString = new NpgsqlConnectionStringBuilder(empty.ConnectionString) { CommandTimeout = 2 }.ToString();
        var database = new Database(SqlDialect.PostgreSql, connectionString);
        await using (var setup = await database.OpenAsync())
        {
            await setup.ExecuteAsync("CREATE TABLE notes (id INT PRIMARY KEY)");
        }

        await cluster.ExecuteAsync("ALTER SYSTEM SET synchronous_standby_names = 'standby_that_never_comes'");
        await cluster.ExecuteAsync("SELECT pg_reload_conf()");

        await using var connection = await database.OpenAsync();
        var write = await database.BeginWriteAsync(connection);
        await using (write)
        {
            await write.Connection.ExecuteAsync("INSERT INTO notes (id) VALUES (1)", transaction: write.Inner);

            // Npgsql cancels the COMMIT at its timeout; PostgreSQL stops waiting and answers
            // success with the warning "canceling wait for synchronous replication".
            var refused = await Assert.ThrowsAsync<RegistryUnavailableException>(() => write.CommitAsync());

            Assert.True(RegistryBusy.IsUnavailable(refused));
            Assert.Equal("01000", Assert.IsType<PostgresException>(refused.InnerException).SqlState);
        }

        // What the registry refused to acknowledge is on this server all the same: the hazard it
        // guards against (were this primary to die now, the row would be gone).
        await using var reader = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(empty.ConnectionString) { Pooling = false }.ToString());
        await reader.OpenAsync();
        Assert.Equal(1, await reader.ExecuteScalarAsync<int>("SELECT COUNT(*) FROM notes"));

        // Dropping the database commits too: stop waiting for the standby first.
        await cluster.ExecuteAsync("ALTER SYSTEM RESET synchronous_standby_names");
        await cluster.ExecuteAsync("SELECT pg_reload_conf()");
    }
}
