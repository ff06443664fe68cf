using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol.Messages;
using OpenPurse.Storage;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// Every node's background sweep (docs/reliability.md): expires authorized settlements past their
/// deadline — the store is told they are not paid; a debit their card runs later goes back to the
/// card — and retells stores the final outcomes they have not acknowledged. Nodes sweep at the same
/// time without harm: each expiry is a conditional update, and stores take an outcome twice.
/// </summary>
internal sealed partial class SettlementSweeper(
    Database database,
    CardRecovery recovery,
    SettlementService settlements,
    OperatorOptions options,
    TimeProvider time,
    OperatorMetrics metrics,
    TopUps.TopUpResolution topUps,
    ILogger<SettlementSweeper> logger) : BackgroundService
{
    /// <summary>At most this many settlements per step of one sweep, so one sweep stays short.</summary>
    private const int BatchMax = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.SweepInterval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.SweepInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                await SweepAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The next tick tries again; a sweep that fails changes nothing half-way (each step is its own transaction).
                LogSweepFailed(e);
            }
        }
    }

    /// <summary>One sweep: expire what is overdue, then tell stores what they have not acknowledged.</summary>
    /// <returns>How many settlements it expired and how many outcomes it told (acknowledged or not).</returns>
    public async Task<(int Expired, int Told)> SweepAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var expired = 0;
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        var overdue = await connection.QueryAsync<string>(
            $"SELECT settlement_id FROM settlements WHERE state {SettlementStates.In(SettlementStates.Expire.From)} AND deadline < @now ORDER BY deadline LIMIT {BatchMax}",
            new { now = StoredTime.Format(now) }).ConfigureAwait(false);
        foreach (var id in overdue)
        {
            await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
            var transaction = write.Inner;
            var row = await SettlementRow.LoadAsync(write.Connection, Guid.Parse(id), transaction).ConfigureAwait(false);
            if (row is not null && SettlementStates.Expire.AllowedFrom(row.State) && await recovery.VoidAsync(write.Connection, transaction, row, VoidReasons.Expired, ResolvedBy.Sweeper, now).ConfigureAwait(false))
            {
                await write.CommitAsync(cancellationToken).ConfigureAwait(false);
                LogExpired(row.Id, row.OrderNo, row.StoreId);
                metrics.Entered(SettlementState.Expired);
                expired++;
            }
        }

        // A settlement completed within the delivery's timeout is being told by round trip 2 right now:
        // telling it too would race that delivery (under load, any of the purchases in flight). A store
        // that did not acknowledge is told again only when its wait (doubling with each attempt) is over.
        var told = 0;
        var untold = await SettlementRow.ListAsync(connection,
            $"""
            s.store_told_at IS NULL AND s.store_given_up_at IS NULL AND s.state {SettlementStates.In(SettlementStates.Told)} AND st.notify_url IS NOT NULL
            AND (NOT s.state {SettlementStates.In(SettlementState.Completed)} OR s.completed_at < @delivering) AND (s.store_next_at IS NULL OR s.store_next_at <= @now)
            ORDER BY s.created_at LIMIT {BatchMax}
            """,
            new { delivering = StoredTime.Format(now - StoreNotifier.Timeout), now = StoredTime.Format(now) }).ConfigureAwait(false);
        foreach (var row in untold)
        {
            var answer = await settlements.TellStoreAsync(row, cancellationToken).ConfigureAwait(false);
            told++;
            metrics.Told(answer.Kind.ToString().ToLowerInvariant());
            if (answer.Kind == StoreAnswerKind.Acknowledged)
            {
                continue;
            }

            await using var write = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
            var state = await CardRecovery.RecordUntoldAsync(write.Connection, write.Inner, row, answer, options, time.GetUtcNow()).ConfigureAwait(false);
            await write.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (state == SettlementState.Disputed)
            {
                LogDisputed(row.Id, row.OrderNo, row.StoreId, answer.Summary);
                metrics.Entered(SettlementState.Disputed);
            }
        }

        metrics.Swept(expired);
        // Top-ups whose capture or void the authorizer did not take when they were resolved.
        await topUps.SweepAsync(cancellationToken).ConfigureAwait(false);

        return (expired, told);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Settlement {SettlementId} expired: order {OrderNo} of {StoreId} is not paid")]
    private partial void LogExpired(Guid settlementId, string orderNo, string storeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Settlement {SettlementId} disputed: store {StoreId} did not take the completion notice of order {OrderNo} ({Answer}); the operator decides")]
    private partial void LogDisputed(Guid settlementId, string orderNo, string storeId, string answer);

    [LoggerMessage(Level = LogLevel.Error, Message = "The settlement sweep failed; it runs again at the next tick")]
    private partial void LogSweepFailed(Exception exception);
}
