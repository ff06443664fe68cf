using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// The second half of <c>reconcile</c>: what the operator says each store was paid, against what the
/// store says it recorded. Each registered store that takes completion notices is asked for its
/// statement (signed by the store, so what it says is its own word); every settlement completed at
/// the operator must be a paid order at its store with the same order number and amount, and every
/// payment the store recorded must be a completed settlement of that store.
/// </summary>
internal sealed class StoreStatements(Database database, StoreRegistry stores, StoreNotifier notifier, ISecurityModule security, TimeProvider time)
{
    /// <summary>The store could not be asked, or its answer is not its signed statement.</summary>
    public const string Unavailable = "store.statement_unavailable";

    /// <summary>Completed (or disputed) at the operator, so the store is owed it, but not recorded as paid by the store.</summary>
    public const string Unrecorded = "store.payment_unrecorded";

    /// <summary>Recorded as paid by the store, not a completed settlement of that store at the operator.</summary>
    public const string Unknown = "store.payment_unknown";

    /// <summary>Both know the settlement, with another order number or amount.</summary>
    public const string Mismatch = "store.payment_mismatch";

    /// <summary>Every difference between the operator's completed settlements and the stores' statements.</summary>
    /// <returns>The differences, and how many stores were compared.</returns>
    public async Task<(IReadOnlyList<LedgerDifference> Differences, int Compared)> CompareAsync(CancellationToken cancellationToken)
    {
        List<string> storeIds;
        List<(string SettlementId, string StoreId, string OrderNo, long AmountMinor, string Currency)> completed;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            storeIds = [.. await connection.QueryAsync<string>("SELECT store_id FROM stores WHERE notify_url IS NOT NULL ORDER BY store_id").ConfigureAwait(false)];
            completed = [.. await connection.QueryAsync<(string, string, string, long, string)>(
                $"SELECT settlement_id, store_id, order_no, amount_minor, currency FROM settlements WHERE state {SettlementStates.In(SettlementStates.PaidToStore)}").ConfigureAwait(false)];
        }

        var differences = new List<LedgerDifference>();
        var compared = 0;
        foreach (var storeId in storeIds)
        {
            if (await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false) is not var (store, keys))
            {
                continue;
            }

            var query = SignedMessage.Sign(security.OperatorKey, new StatementQuery(storeId, time.GetUtcNow()), MessageTypes.StatementQuery);
            var (compact, error) = await notifier.FetchStatementAsync(store, query, cancellationToken).ConfigureAwait(false);
            var statement = compact is null ? null : SignedMessage.Verify<StoreStatement>(compact, keys, MessageTypes.Statement, out error);
            if (statement is null && compact is not null && await stores.IsRetiredAsync(Jws.PeekKeyId(compact), cancellationToken).ConfigureAwait(false))
            {
                error = $"signed with a retired key ({ProblemCode.StoreKeyRetired.Code})";
            }

            if (statement is null || statement.StoreId != storeId)
            {
                differences.Add(new LedgerDifference(Unavailable, storeId, "the store's signed statement", "none", error ?? "the statement is another store's"));
                continue;
            }

            compared++;
            var ours = completed.Where(c => c.StoreId == storeId).ToDictionary(c => Guid.Parse(c.SettlementId));
            var theirs = new Dictionary<Guid, StatementLine>();
            foreach (var line in statement.Paid)
            {
                theirs.TryAdd(line.SettlementId, line);
            }

            foreach (var (id, settlement) in ours)
            {
                var amount = new Money(settlement.AmountMinor, Currency.FromCode(settlement.Currency));
                if (!theirs.TryGetValue(id, out var line))
                {
                    differences.Add(new LedgerDifference(Unrecorded, id.ToString(), $"order {settlement.OrderNo} paid at {storeId}, {amount}", "not recorded by the store",
                        "the store has not accepted the completion notice (see the settlement's state: told, disputed)"));
                }
                else if (line.OrderNo != settlement.OrderNo || line.Amount != amount)
                {
                    differences.Add(new LedgerDifference(Mismatch, id.ToString(), $"order {settlement.OrderNo}, {amount}", $"order {line.OrderNo}, {line.Amount}", $"at {storeId}"));
                }
            }

            foreach (var (id, line) in theirs.Where(t => !ours.ContainsKey(t.Key)))
            {
                differences.Add(new LedgerDifference(Unknown, id.ToString(), "a completed settlement of " + storeId, $"order {line.OrderNo} recorded paid, {line.Amount}",
                    "the operator has no such completed settlement for this store"));
            }
        }

        return (differences, compared);
    }
}
