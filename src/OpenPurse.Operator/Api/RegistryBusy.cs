using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using OpenPurse.Hosting;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The registry cannot take the request now: every pooled PostgreSQL connection stayed in use
/// for the pool's whole timeout, or SQLite's write lock stayed held for its busy timeout. That is
/// overload, not a fault: the answer is 503 <c>operator.busy</c> with Retry-After, which wallets and
/// balancers retry, where a 500 says something broke. Nothing was committed by the request.
/// </summary>
internal sealed partial class RegistryBusy(ILogger<RegistryBusy> logger) : IExceptionHandler
{
    /// <summary>SQLITE_BUSY (sqlite.org/rescode.html).</summary>
    private const int SqliteBusy = 5;

    /// <summary>When an overloaded node asks to be tried again.</summary>
    private const string RetryAfterSeconds = "1";

    /// <summary>The answer of a node at capacity, whichever limit it met: 503 operator.busy, Retry-After.</summary>
    public static async Task AnswerAsync(HttpContext httpContext, string detail)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        httpContext.Response.Headers.RetryAfter = RetryAfterSeconds;
        await new Refusal(ProblemCode.OperatorBusy, detail).ToResult().ExecuteAsync(httpContext).ConfigureAwait(false);
    }

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (!IsBusy(exception))
        {
            return false;
        }

        LogBusy(httpContext.Request.Path);
        await AnswerAsync(httpContext, "The operator's registry is at capacity; try again shortly. Nothing was changed.").ConfigureAwait(false);
        return true;
    }

    /// <summary>Whether the exception is the registry at capacity rather than a fault.</summary>
    public static bool IsBusy(Exception exception) => exception switch
    {
        // Npgsql: "The connection pool has been exhausted …", a TimeoutException inside.
        NpgsqlException { InnerException: TimeoutException } => true,
        SqliteException { SqliteErrorCode: SqliteBusy } => true,
        _ => false,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} answered 503 operator.busy: the registry's connections or write lock were not free in time")]
    private partial void LogBusy(string path);
}
