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

    /// <summary>
    /// Payments a store may list beyond the settlements completed for it (each one a
    /// <see cref="Unknown"/>) before its statement is taken as endless and not compared: a store
    /// that answers one line a page for ever would hold the reconciliation for ever.
    /// </summary>
    public const int UnknownPaymentsMax = 10_000;

    /// <summary>Every difference between the operator's completed settlements and the stores' statements.</summary>
    /// <returns>The differences, and how many stores were compared.</returns>
    public async Task<(IReadOnlyList<LedgerDifference> Differences, int Compared)> CompareAsync(CancellationToken cancellationToken)
    {
        List<string> storeIds;
        ILookup<string, (string SettlementId, string StoreId, string OrderNo, long AmountMinor, string Currency)> completed;
        await using (var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            storeIds = [.. await connection.QueryAsync<string>("SELECT store_id FROM stores WHERE notify_url IS NOT NULL ORDER BY store_id").ConfigureAwait(false)];
            // One read of every store's completed settlements (no index serves a read per store).
            completed = (await connection.QueryAsync<(string SettlementId, string StoreId, string OrderNo, long AmountMinor, string Currency)>(
                $"SELECT settlement_id, store_id, order_no, amount_minor, currency FROM settlements WHERE state {SettlementStates.In(SettlementStates.PaidToStore)}").ConfigureAwait(false))
                .ToLookup(c => c.StoreId, StringComparer.Ordinal);
        }

        var differences = new List<LedgerDifference>();
        var compared = 0;
        foreach (var storeId in storeIds)
        {
            if (await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false) is not var (store, keys))
            {
                continue;
            }

            var ours = completed[storeId].ToDictionary(c => Guid.Parse(c.SettlementId), c => (c.OrderNo, Amount: new Money(c.AmountMinor, Currency.FromCode(c.Currency))));
            var (theirs, error) = await ReadStatementAsync(store, keys, checked(ours.Count + UnknownPaymentsMax), cancellationToken).ConfigureAwait(false);
            if (theirs is null)
            {
                differences.Add(new LedgerDifference(Unavailable, storeId, "the store's signed statement", "none", error!));
                continue;
            }

            compared++;
            foreach (var (id, settlement) in ours)
            {
                if (!theirs.TryGetValue(id, out var line))
                {
                    differences.Add(new LedgerDifference(Unrecorded, id.ToString(), $"order {settlement.OrderNo} paid at {storeId}, {settlement.Amount}", "not recorded by the store",
                        "the store has not accepted the completion notice (see the settlement's state: told, disputed)"));
                }
                else if (line.OrderNo != settlement.OrderNo || line.Amount != settlement.Amount)
                {
                    differences.Add(new LedgerDifference(Mismatch, id.ToString(), $"order {settlement.OrderNo}, {settlement.Amount}", $"order {line.OrderNo}, {line.Amount}", $"at {storeId}"));
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

    /// <summary>
    /// The store's whole statement, page by page, each page verified: signed by the store, for this
    /// store, the page asked for, its lines in order after the page before. Null, and why, when the
    /// store cannot be asked or one page is not what it must be: then nothing of it is compared.
    /// </summary>
    private async Task<(Dictionary<Guid, StatementLine>? Lines, string? Error)> ReadStatementAsync(
        StoreRecord store, JsonWebKeySet keys, int linesMax, CancellationToken cancellationToken)
    {
        var lines = new Dictionary<Guid, StatementLine>();
        Guid? after = null;
        while (true)
        {
            var query = SignedMessage.Sign(security.OperatorKey, new StatementQuery(store.StoreId, time.GetUtcNow(), after), MessageTypes.StatementQuery);
            var (compact, error) = await notifier.FetchStatementAsync(store, query, cancellationToken).ConfigureAwait(false);
            var page = compact is null ? null : SignedMessage.Verify<StoreStatement>(compact, keys, MessageTypes.Statement, out error);
            if (page is null && compact is not null && await stores.IsRetiredAsync(Jws.PeekKeyId(compact), cancellationToken).ConfigureAwait(false))
            {
                error = $"signed with a retired key ({ProblemCode.StoreKeyRetired.Code})";
            }

            if (page is null)
            {
                return (null, error);
            }

            if (page.StoreId != store.StoreId)
            {
                return (null, "the statement is another store's");
            }

            if (page.After != after)
            {
                return (null, $"the store answered another page than the one after {after?.ToString() ?? "the start"}");
            }

            foreach (var line in page.Paid)
            {
                if (!StoreStatement.Follows(after, line.SettlementId))
                {
                    return (null, $"the statement's settlements are not in order after {after?.ToString() ?? "the start"}");
                }

                if (lines.Count == linesMax)
                {
                    return (null, $"the statement runs past {linesMax} payments, {UnknownPaymentsMax} more than the store is owed");
                }

                lines.Add(line.SettlementId, line);
                after = line.SettlementId;
            }

            if (!page.More)
            {
                return (lines, null);
            }

            if (page.Paid.Count == 0)
            {
                return (null, "a page of the statement holds no payment, yet says more follow");
            }
        }
    }
}
