using OpenPurse.Hosting;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Store.Catalog;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;

namespace OpenPurse.Store.Orders;

/// <summary>
/// The store's side of the operator's reconciliation: every order a member store recorded as paid,
/// with the settlement that paid it, a page at a time, each signed with that store's key. Only the
/// operator may ask (its query is signed with the key that signs completion notices): a store's
/// sales are nobody else's.
/// </summary>
internal sealed partial class StatementDesk(
    StoreDirectory directory, MemberKeys keys, OrderDatabase database, OperatorKeys operatorKeys, TimeProvider time, ILogger<StatementDesk> log)
{
    /// <summary>How long after it was signed the operator's query is taken.</summary>
    public static readonly TimeSpan QueryLifetime = TimeSpan.FromMinutes(5);

    /// <summary>How far ahead of the store's clock a query may be dated.</summary>
    private static readonly TimeSpan s_clockSkewMax = TimeSpan.FromMinutes(2);

    /// <param name="storeId">The member store named in the path.</param>
    /// <param name="query">The operator's signed <see cref="StatementQuery"/>.</param>
    /// <param name="cancellationToken">The request's.</param>
    public async Task<Result<StatementDelivery>> StatementAsync(string storeId, string? query, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(query))
        {
            return StoreRefusals.StatementQueryInvalid($"Only the operator reads statements: send its signed query in {StatementQuery.Header}.");
        }

        var operatorSet = await operatorKeys.GetForAsync(Jws.PeekKeyId(query), cancellationToken).ConfigureAwait(false);
        if (operatorSet is null)
        {
            return StoreRefusals.OperatorUnavailable("statement query");
        }

        var asked = SignedMessage.Verify<StatementQuery>(query, operatorSet, MessageTypes.StatementQuery, out var error);
        var now = time.GetUtcNow();
        if (asked is null || !string.Equals(asked.StoreId, storeId, StringComparison.Ordinal)
            || asked.IssuedAt <= now - QueryLifetime || asked.IssuedAt >= now + s_clockSkewMax)
        {
            LogQueryRefused(log, error ?? "stale or for another store");
            return StoreRefusals.StatementQueryInvalid("The query is not the operator's, not for this store, or not fresh.");
        }

        if (directory.Find(storeId) is null)
        {
            return StoreRefusals.UnknownStore(storeId);
        }

        // One more than a page: whether another follows.
        var paid = await database.ListPaidAsync(storeId, asked.After, StoreStatement.PageLinesMax + 1, cancellationToken).ConfigureAwait(false);
        var statement = new StoreStatement(
            storeId, now, [.. paid.Take(StoreStatement.PageLinesMax).Select(order => new StatementLine(order.SettlementId!.Value, order.OrderNo, order.Amount))],
            asked.After, More: paid.Count > StoreStatement.PageLinesMax);
        return new StatementDelivery(SignedMessage.Sign(keys.For(storeId), statement, MessageTypes.Statement));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refused a statement query: {Reason}")]
    private static partial void LogQueryRefused(ILogger logger, string reason);
}
