using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using OpenPurse.Hosting;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The registry cannot take the request now, and the answer is 503 <c>operator.busy</c> with
/// Retry-After, which wallets and balancers retry, where a 500 says something broke. Two causes:
/// <list type="bullet">
/// <item>Overload: every pooled PostgreSQL connection stayed in use for the pool's whole timeout,
/// or SQLite's write lock stayed held for its busy timeout. Nothing was committed.</item>
/// <item>The primary is gone: it died, its network was cut, or it is being demoted while a
/// standby is promoted (a failover). A request cut off here may or may not have committed (the
/// primary can die during COMMIT); every request of the protocol is safe to send again, and the
/// card's next greeting settles what a wallet gave up on.</item>
/// </list>
/// </summary>
internal sealed partial class RegistryBusy(ILogger<RegistryBusy> logger) : IExceptionHandler
{
    /// <summary>SQLITE_BUSY (sqlite.org/rescode.html).</summary>
    private const int SqliteBusy = 5;

    /// <summary>When an overloaded node asks to be tried again.</summary>
    private const string RetryAfterSeconds = "1";

    /// <summary>When a node whose primary is gone asks to be tried again: a failover takes seconds, not milliseconds.</summary>
    private const string UnavailableRetryAfterSeconds = "2";

    /// <summary>The answer of a node at capacity, whichever limit it met: 503 operator.busy, Retry-After.</summary>
    public static Task AnswerAsync(HttpContext httpContext, string detail) => AnswerAsync(httpContext, detail, RetryAfterSeconds);

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (IsBusy(exception))
        {
            LogBusy(httpContext.Request.Path);
            await AnswerAsync(httpContext, "The operator's registry is at capacity; try again shortly. Nothing was changed.").ConfigureAwait(false);
            return true;
        }

        if (IsUnavailable(exception))
        {
            LogUnavailable(httpContext.Request.Path, Describe(exception));
            // The pool's idle connections lead to the primary that is gone: each would fail the
            // next request that takes it. New connections find the new primary (Target Session
            // Attributes=primary), so drop the old ones at once.
            NpgsqlConnection.ClearAllPools();
            await AnswerAsync(httpContext, "The operator's database is not reachable or is failing over to a standby; try again shortly. The request is safe to repeat.", UnavailableRetryAfterSeconds).ConfigureAwait(false);
            return true;
        }

        return false;
    }

    /// <summary>Whether the exception is the registry at capacity rather than a fault.</summary>
    public static bool IsBusy(Exception exception) => exception switch
    {
        // Npgsql: "The connection pool has been exhausted …", a TimeoutException inside; also a
        // command that ran past its Command Timeout (a primary that stopped answering).
        NpgsqlException { InnerException: TimeoutException } => true,
        SqliteException { SqliteErrorCode: SqliteBusy } => true,
        _ => false,
    };

    /// <summary>
    /// Whether the exception says the PostgreSQL primary cannot be reached or is no longer the
    /// primary: the server went away (a broken connection, refused connections), it is shutting
    /// down or starting up, it became a standby, or no host of a multi-host connection string is a
    /// primary now. A statement the server refused for what it said (a constraint, bad SQL) is not.
    /// </summary>
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        RegistryUnavailableException => true,
        PostgresException server => server.SqlState is
            PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
            or PostgresErrorCodes.ReadOnlySqlTransaction or PostgresErrorCodes.TooManyConnections
            || server.SqlState.StartsWith("08", StringComparison.Ordinal),
        // "Unable to connect to a suitable host": every host failed, or none is a primary now.
        NpgsqlException { InnerException: AggregateException hosts } => hosts.InnerExceptions.Count > 0 && hosts.InnerExceptions.All(IsUnavailable),
        NpgsqlException { InnerException: NpgsqlException inner } => IsUnavailable(inner),
        // The connection broke or could not be made (IOException, SocketException inside).
        NpgsqlException client => client.IsTransient && client.InnerException is not TimeoutException,
        _ => false,
    };

    private static async Task AnswerAsync(HttpContext httpContext, string detail, string retryAfter)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        httpContext.Response.Headers.RetryAfter = retryAfter;
        await new Refusal(ProblemCode.OperatorBusy, detail).ToResult().ExecuteAsync(httpContext).ConfigureAwait(false);
    }

    // The exception's type and SQLSTATE, never its message: a server's message may quote a statement's values.
    private static string Describe(Exception exception) => exception switch
    {
        PostgresException server => $"PostgreSQL {server.SqlState}",
        { InnerException: { } inner } => $"{exception.GetType().Name} ({inner.GetType().Name})",
        _ => exception.GetType().Name,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} answered 503 operator.busy: the registry's connections or write lock were not free in time")]
    private partial void LogBusy(string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} answered 503 operator.busy: the registry's primary is not reachable or not the primary now ({Cause})")]
    private partial void LogUnavailable(string path, string cause);
}
