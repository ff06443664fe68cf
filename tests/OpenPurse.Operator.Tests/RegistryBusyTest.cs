using System.Net.Sockets;
using Npgsql;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Registry;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// Which registry failures the operator answers with 503 operator.busy and Retry-After (a client
/// sends the request again) rather than 500: the pool or SQLite's lock at capacity, and a
/// PostgreSQL primary that is gone or failing over. A statement the server refused is neither.
/// </summary>
public sealed class RegistryBusyTest
{
    private static PostgresException Server(string sqlState) => new("refused", "FATAL", "FATAL", sqlState);

    [Theory]
    [InlineData(PostgresErrorCodes.AdminShutdown)] // a fast shutdown: Patroni demoting the primary
    [InlineData(PostgresErrorCodes.CrashShutdown)] // another backend crashed, the server restarts
    [InlineData(PostgresErrorCodes.CannotConnectNow)] // starting up or shutting down
    [InlineData(PostgresErrorCodes.ReadOnlySqlTransaction)] // the server is a standby now
    [InlineData(PostgresErrorCodes.TooManyConnections)]
    [InlineData(PostgresErrorCodes.ConnectionFailure)]
    public void ServerGoneOrNoLongerPrimary_IsUnavailable(string sqlState)
    {
        Assert.True(RegistryBusy.IsUnavailable(Server(sqlState)));
        Assert.False(RegistryBusy.IsBusy(Server(sqlState)));
    }

    [Theory]
    [InlineData(PostgresErrorCodes.UniqueViolation)]
    [InlineData(PostgresErrorCodes.SyntaxError)]
    [InlineData(PostgresErrorCodes.CheckViolation)]
    [InlineData(PostgresErrorCodes.NumericValueOutOfRange)]
    public void StatementRefused_IsNeither(string sqlState)
    {
        Assert.False(RegistryBusy.IsUnavailable(Server(sqlState)));
        Assert.False(RegistryBusy.IsBusy(Server(sqlState)));
    }

    [Fact]
    public void ConnectionBrokeOrRefused_IsUnavailable()
    {
        Assert.True(RegistryBusy.IsUnavailable(new NpgsqlException("Exception while reading from stream", new EndOfStreamException())));
        Assert.True(RegistryBusy.IsUnavailable(new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused))));
    }

    [Fact]
    public void NoHostIsPrimary_IsUnavailable()
    {
        // Npgsql's multi-host answer when every host failed: each host's own failure inside.
        Assert.True(RegistryBusy.IsUnavailable(new NpgsqlException("Unable to connect to a suitable host.", new AggregateException(
            new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused)),
            Server(PostgresErrorCodes.CannotConnectNow)))));
        // Only standbys reachable while one is promoted ("No suitable host was found", nothing inside):
        // the registry says so when it opens the connection.
        Assert.True(RegistryBusy.IsUnavailable(new RegistryUnavailableException("no primary", new NpgsqlException("No suitable host was found."))));
    }

    [Fact]
    public void Timeout_IsBusy_NotUnavailable()
    {
        var exhausted = new NpgsqlException("The connection pool has been exhausted", new TimeoutException());

        Assert.True(RegistryBusy.IsBusy(exhausted));
        Assert.False(RegistryBusy.IsUnavailable(exhausted));
    }

    [Fact]
    public void OtherFaults_AreNeither()
    {
        Assert.False(RegistryBusy.IsUnavailable(new InvalidOperationException("a bug")));
        Assert.False(RegistryBusy.IsUnavailable(new IOException("a client went away")));
        Assert.False(RegistryBusy.IsUnavailable(new NpgsqlException("Unable to connect to a suitable host.", new AggregateException())));
    }
}
