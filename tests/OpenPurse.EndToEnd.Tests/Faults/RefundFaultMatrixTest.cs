using System.Diagnostics;
using System.Net;
using OpenPurse.Operator;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// The fault matrix of a refund (docs/reliability.md, "Refund" and "Card credits"): a card pays an
/// order, the store owner refunds part of it through the store's admin API (the store signs the
/// request and sends it to the operator's <c>POST /v1/refunds</c>), then the card syncs and takes
/// the CREDIT. One message of that is lost, or its answer, or a process is killed for real around
/// it: the store's request to the operator, the sync, the CREDIT's completion, the card pulled in
/// the middle of its CREDIT. Then the dead come back, the store owner asks again for the same
/// refund if the first ask had no answer, and the card syncs until it is owed nothing. The card,
/// the operator's refunds and card credits, the store's own refunds and the store's signed
/// statement must agree: refunded once, under the store's one refund id.
/// </summary>
public abstract class RefundFaultMatrixTest(ProcessSystemFixture fixture, ITestOutputHelper output)
{
    private const string Refund = "^/v1/refunds$";
    private const string Sync = "^/v1/cards/sync$";
    private const string CreditCompletion = "^/v1/cards/credits/[^/]+/completion$";

    private static readonly Money s_load = Money.Parse("50.00 EUR");

    /// <summary>book-002, the article paid for.</summary>
    private static readonly Money s_price = Money.Parse("12.50 EUR");

    private static readonly Money s_refund = Money.Parse("5.00 EUR");

    /// <summary>Every fault of a refund.</summary>
    public static TheoryData<string> Cases { get; } = [.. CaseTable().Keys];

    private protected abstract bool UsesPostgres { get; }

    private protected async Task RunAsync(string name)
    {
        var system = await fixture.SystemAsync(UsesPostgres, TimeSpan.FromMinutes(10));
        var @case = CaseTable()[name];
        var clock = Stopwatch.StartNew();
        var card = await system.IssueCardAsync($"{name}-refund", s_load);
        var (cardId, _) = ProcessSystem.ReadCard(card);

        // One clean purchase, paid and known to the store.
        using (var payer = system.StartWallet(card, "book-002", SettlementProfile.Signed))
        {
            var paid = await payer.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.True(paid == 0, $"The purchase failed ({paid}):\n{payer.Output}");
        }

        var settlement = Assert.Single(await system.SettlementsOfAsync(cardId));
        Assert.Equal("completed", settlement.State);
        await WaitForAsync(async () => await system.OrderStateAsync(settlement.OrderNo) == "paid", "the store to record the payment");

        // The refund, with its fault when the fault is the store's or the operator's.
        var relay = @case.Link == Link.StoreToOperator ? system.StoreToOperator : system.WalletToOperator;
        PartyProcess? sync = null;
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action? kill = @case.Victim switch
        {
            Victim.Wallet => () => sync?.Kill(),
            Victim.Operator => system.KillOperator,
            Victim.Store => system.KillStore,
            _ => null,
        };
        relay.Arm(new Fault("POST", @case.Path, @case.Action, kill is null ? null : () =>
        {
            kill();
            killed.TrySetResult();
        }));
        var (status, answer) = await system.RefundAsync(settlement.OrderNo, s_refund.ToString());
        if (@case.Link == Link.StoreToOperator)
        {
            Assert.True(relay.Fired.IsCompleted, $"The fault never fired: the refund did not reach the operator. The store said {status}: {answer}");
            relay.Arm(null);

            // The store's own call may fail before the relay has seen its victim die: revived only once dead.
            if (kill is not null)
            {
                await killed.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }

            await system.ReviveAsync();

            // The store owner asks again for the same refund: the store sends it again under its id.
            if (status != HttpStatusCode.OK)
            {
                (status, answer) = await system.RefundAsync(settlement.OrderNo, s_refund.ToString());
            }
        }

        Assert.True(status == HttpStatusCode.OK, $"The refund was not made: {status}: {answer}");

        // The card takes it at its next sync, with the sync's fault.
        if (@case.Link == Link.WalletToOperator)
        {
            sync = system.StartSync(card);
            await sync.WaitAsync(TimeSpan.FromSeconds(90));
            var syncOutput = sync.Output;
            sync.Dispose();
            Assert.True(relay.Fired.IsCompleted, $"The fault never fired. The sync said:\n{syncOutput}");
            relay.Arm(null);
            await system.ReviveAsync();
        }

        // Recovery: the card syncs until it is owed nothing.
        for (var round = 0; round < 4 && (await system.CardCreditsOfAsync(cardId)).Any(c => c.State != "credited"); round++)
        {
            var (exit, syncOutput) = await system.SyncAsync(card);
            Assert.True(exit == 0, $"openpurse sync exited {exit}:\n{syncOutput}");
        }

        // Agreement: the operator's refund, its card credit, the store's refund, the card, the books.
        var refund = Assert.Single(await system.RefundsOfAsync(settlement.SettlementId));
        Assert.Equal(s_refund.MinorUnits, refund.AmountMinor);
        Assert.True(refund.AmountMinor <= s_price.MinorUnits, "More was refunded than paid.");
        var stored = Assert.Single(await system.StoreRefundsOfAsync(settlement.OrderNo));
        Assert.Equal(refund.RefundId, stored.RefundId);
        Assert.Equal(refund.State, stored.State);
        Assert.Equal(refund.AmountMinor, stored.AmountMinor);
        var credit = Assert.Single(await system.CardCreditsOfAsync(cardId));
        Assert.Equal(("refund", refund.RefundId, "credited", refund.AmountMinor), credit);

        var (_, after) = ProcessSystem.ReadCard(card);
        Assert.Equal(s_load.MinorUnits - s_price.MinorUnits + refund.AmountMinor, after.MinorUnits);
        Assert.Equal(after.MinorUnits, await system.CardAccountAsync(cardId));
        var (reconcile, report) = await system.ReconcileWithStoresAsync();
        Assert.True(reconcile == ReconcileCommand.ExitClean, report);
        output.WriteLine($"{name}: refund {refund.State} at the operator and the store, credited once, balance {after}, {clock.ElapsedMilliseconds} ms");
    }

    private static async Task WaitForAsync(Func<Task<bool>> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Waited in vain for {what}.");
            await Task.Delay(100);
        }
    }

    private enum Link
    {
        StoreToOperator,
        WalletToOperator,
    }

    private enum Victim
    {
        None,
        Wallet,
        Operator,
        Store,
    }

    private sealed record Case(Link Link, string Path, FaultAction Action, Victim Victim = Victim.None);

    // Each case a distinct path through the store's refund desk, the operator's refund and card
    // credit code; the faults that look the same from there once (an operator killed before a
    // request as the request lost; killed after making the sync's CREDIT, or after committing the
    // CREDIT's completion, as the answer lost, which the debit return's matrix also kills for).
    private static Dictionary<string, Case> CaseTable() => new()
    {
        // The store's request: not recorded, or recorded and its answer lost; the same refund id again.
        ["refund-request-lost"] = new(Link.StoreToOperator, Refund, FaultAction.DropRequest),
        ["refund-answer-lost"] = new(Link.StoreToOperator, Refund, FaultAction.DropAnswer),
        ["refund-operator-dies-after-commit"] = new(Link.StoreToOperator, Refund, FaultAction.KillAfter, Victim.Operator),
        ["refund-store-dies-awaiting-answer"] = new(Link.StoreToOperator, Refund, FaultAction.KillAfter, Victim.Store),
        // The sync that makes the CREDIT: made, never run; the next greeting proves it, and owes it again.
        ["sync-answer-lost"] = new(Link.WalletToOperator, Sync, FaultAction.DropAnswer),
        // The card pulled mid-CREDIT: it took it or not, the next greeting shows which.
        ["card-pulled-mid-credit"] = new(Link.WalletToOperator, Sync, FaultAction.KillAfterDelivery, Victim.Wallet),
        // The CREDIT's completion: the card took it; the next greeting finds it in the card's log.
        ["credit-completion-lost"] = new(Link.WalletToOperator, CreditCompletion, FaultAction.DropRequest),
        ["credit-completion-answer-lost"] = new(Link.WalletToOperator, CreditCompletion, FaultAction.DropAnswer),
    };
}

/// <summary>The refund's fault matrix on SQLite.</summary>
public sealed class RefundFaultMatrixOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : RefundFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringARefund_CardOperatorAndStoreAgree(string fault) => RunAsync(fault);
}

/// <summary>The refund's fault matrix on PostgreSQL.</summary>
public sealed class RefundFaultMatrixOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : RefundFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringARefund_CardOperatorAndStoreAgree(string fault) => RunAsync(fault);
}
