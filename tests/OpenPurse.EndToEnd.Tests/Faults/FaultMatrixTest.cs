using System.Diagnostics;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// The fault matrix (docs/reliability.md): for each message of a purchase, the process that holds
/// it is killed for real, or the message or its answer is lost; then the dead come back, the card
/// comes online again — before its settlement's deadline, or after the sweeper expired it — and
/// the card, the ledger, the store and the wallet must agree: every debit ended in a completed
/// settlement or was returned to the card, the store delivers only what was paid and was told
/// every outcome, and the ledger reconciles.
/// </summary>
public abstract class FaultMatrixTest(ProcessSystemFixture fixture, ITestOutputHelper output)
{
    private const string RoundTrip1 = "^/v1/settlements$";
    private const string RoundTrip2 = "^/v1/settlements/[^/]+/completion$";
    private const string Acn = "^/v1/operator/completions$";
    private const string Order = "^/v1/orders$";
    private const string Download = "^/v1/orders/[^/]+/download$";
    private const string Sync = "^/v1/cards/sync$";
    private const string CreditCompletion = "^/v1/cards/credits/[^/]+/completion$";

    private static readonly Money s_load = Money.Parse("50.00 EUR");

    /// <summary>The deadline of the cases that wait for the sweeper to expire their settlement.</summary>
    private protected static readonly TimeSpan ShortSettlementTimeout = TimeSpan.FromSeconds(4);

    /// <summary>Every fault: where (which relay and message), what happens, who dies.</summary>
    public static TheoryData<string> Cases { get; } = [.. CaseTable().Keys];

    /// <summary>Every fault of the return of a debit (sync, CREDIT, its completion).</summary>
    public static TheoryData<string> SyncCases { get; } = [.. SyncCaseTable().Keys];

    private protected abstract bool UsesPostgres { get; }

    /// <summary>
    /// How long a settlement waits for its card. The cases whose card comes back in time have the
    /// longer deadline, so that a slow machine does not turn them into late cases; the cases that
    /// wait for the sweeper to expire the settlement have a short one, still long enough for the
    /// purchase to reach its fault first.
    /// </summary>
    private protected virtual TimeSpan SettlementTimeout => TimeSpan.FromSeconds(6);

    private protected async Task RunAsync(string name, bool cardBackAfterDeadline)
    {
        var system = await fixture.SystemAsync(UsesPostgres, SettlementTimeout);
        var fault = CaseTable()[name];
        var relay = fault.Link switch
        {
            Link.WalletToOperator => system.WalletToOperator,
            Link.WalletToStore => system.WalletToStore,
            _ => system.OperatorToStore,
        };
        var clock = Stopwatch.StartNew();
        var card = await system.IssueCardAsync($"{name}-{(cardBackAfterDeadline ? "late" : "soon")}", s_load);
        var (cardId, before) = ProcessSystem.ReadCard(card);
        Assert.Equal(s_load, before);

        // The purchase, with one fault on its way.
        PartyProcess? wallet = null;
        relay.Arm(new Fault(fault.Method, fault.Path, fault.Action, fault.Victim switch
        {
            Victim.Wallet => () => wallet?.Kill(),
            Victim.Operator => system.KillOperator,
            Victim.Store => system.KillStore,
            _ => null,
        }));
        var profile = name.GetHashCode(StringComparison.Ordinal) % 2 == 0 ? SettlementProfile.Signed : SettlementProfile.Lean;
        wallet = system.StartWallet(card, "book-002", profile);
        var exit = await wallet.WaitAsync(TimeSpan.FromSeconds(90));
        var walletOutput = wallet.Output;
        wallet.Dispose();
        Assert.True(relay.Fired.IsCompleted, $"The fault never fired: the purchase did not reach that step. Wallet said:\n{walletOutput}");
        relay.Arm(null);

        // Recovery: what died comes back; the card comes online again, now or after its deadline.
        await system.ReviveAsync();
        if (cardBackAfterDeadline)
        {
            await WaitUntilAsync(system, cardId, s => s.State is not "authorized", "the sweeper to expire the settlement");
        }

        var (syncExit, syncOutput) = await system.SyncAsync(card);
        Assert.True(syncExit == 0, $"openpurse sync exited {syncExit}:\n{syncOutput}");
        await WaitUntilAsync(system, cardId, s => s.State is "completed" or "voided" or "reversed" && s.StoreToldAt is not null, "every settlement to be final and its store told");

        // Agreement: card, ledger, store, wallet.
        var (_, after) = ProcessSystem.ReadCard(card);
        var settlements = await system.SettlementsOfAsync(cardId);
        var completed = settlements.Where(s => s.State == "completed").ToList();
        Assert.True(completed.Count <= 1, "One purchase is paid at most once.");
        Assert.Equal(before.MinorUnits - (completed.Count * 1_250), after.MinorUnits);
        Assert.Equal(after.MinorUnits, await system.CardAccountAsync(cardId));
        foreach (var settlement in settlements)
        {
            Assert.Equal(settlement.State == "completed" ? "paid" : "cancelled", await system.OrderStateAsync(settlement.OrderNo));
        }

        if (exit == 0)
        {
            Assert.Single(completed);
            Assert.Contains("Paid", walletOutput, StringComparison.Ordinal);
        }

        var ledger = await system.ReconcileAsync();
        Assert.True(ledger.IsClean, ledger.ToText());
        output.WriteLine($"{name} ({profile}, card back {(cardBackAfterDeadline ? "after" : "before")} the deadline): wallet exit {exit?.ToString() ?? "none"}, "
            + $"settlements {string.Join(", ", settlements.Select(s => s.State))}, balance {before} → {after}, {clock.ElapsedMilliseconds} ms");
    }

    private enum Link
    {
        WalletToOperator,
        WalletToStore,
        OperatorToStore,
    }

    private enum Victim
    {
        None,
        Wallet,
        Operator,
        Store,
    }

    private static Dictionary<string, (Link Link, string Method, string Path, FaultAction Action, Victim Victim)> CaseTable() => new()
    {
        ["rt1-request-lost"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.DropRequest, Victim.None),
        ["rt1-wallet-dies-sending"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.KillBefore, Victim.Wallet),
        ["rt1-operator-dies-before"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.KillBefore, Victim.Operator),
        ["rt1-answer-lost"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.DropAnswer, Victim.None),
        ["rt1-operator-dies-after-commit"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.KillAfter, Victim.Operator),
        ["rt1-wallet-dies-awaiting-answer"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.KillAfter, Victim.Wallet),
        ["wallet-dies-while-card-pays"] = (Link.WalletToOperator, "POST", RoundTrip1, FaultAction.KillAfterDelivery, Victim.Wallet),
        ["rt2-request-lost"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.DropRequest, Victim.None),
        ["rt2-wallet-dies-sending"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.KillBefore, Victim.Wallet),
        ["rt2-operator-dies-before"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.KillBefore, Victim.Operator),
        ["rt2-answer-lost"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.DropAnswer, Victim.None),
        ["rt2-operator-dies-after-commit"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.KillAfter, Victim.Operator),
        ["rt2-wallet-dies-awaiting-answer"] = (Link.WalletToOperator, "POST", RoundTrip2, FaultAction.KillAfter, Victim.Wallet),
        ["acn-delivery-lost"] = (Link.OperatorToStore, "POST", Acn, FaultAction.DropRequest, Victim.None),
        ["acn-store-dies-before"] = (Link.OperatorToStore, "POST", Acn, FaultAction.KillBefore, Victim.Store),
        ["acn-store-dies-after-recording"] = (Link.OperatorToStore, "POST", Acn, FaultAction.KillAfter, Victim.Store),
        ["acn-operator-dies-awaiting-receipt"] = (Link.OperatorToStore, "POST", Acn, FaultAction.KillAfter, Victim.Operator),
        ["acn-receipt-lost"] = (Link.OperatorToStore, "POST", Acn, FaultAction.DropAnswer, Victim.None),
        ["order-store-dies-after-billing"] = (Link.WalletToStore, "POST", Order, FaultAction.KillAfter, Victim.Store),
        ["download-store-dies"] = (Link.WalletToStore, "GET", Download, FaultAction.KillBefore, Victim.Store),
        ["download-wallet-dies"] = (Link.WalletToStore, "GET", Download, FaultAction.KillBefore, Victim.Wallet),
    };

    /// <summary>
    /// The return of a debit under faults: the card paid, its completion notice was lost and the
    /// settlement expired; then the sync that returns the value meets one fault; what died comes
    /// back and the card syncs again until nothing is owed. The card ends with its whole load,
    /// credited once.
    /// </summary>
    private protected async Task RunReturnAsync(string name)
    {
        var system = await fixture.SystemAsync(UsesPostgres, SettlementTimeout);
        var fault = SyncCaseTable()[name];
        var card = await system.IssueCardAsync($"{name}-return", s_load);
        var (cardId, before) = ProcessSystem.ReadCard(card);

        // The debit whose notice is lost: the wallet dies sending round trip 2.
        PartyProcess? wallet = null;
        system.WalletToOperator.Arm(new Fault("POST", RoundTrip2, FaultAction.KillBefore, () => wallet?.Kill()));
        wallet = system.StartWallet(card, "book-002", SettlementProfile.Signed);
        await wallet.WaitAsync(TimeSpan.FromSeconds(90));
        wallet.Dispose();
        Assert.True(system.WalletToOperator.Fired.IsCompleted, "The purchase did not reach round trip 2.");
        Assert.Equal(before.MinorUnits - 1_250, ProcessSystem.ReadCard(card).Balance.MinorUnits);
        await WaitUntilAsync(system, cardId, s => s.State is "expired", "the sweeper to expire the settlement");

        // The sync, with its fault.
        PartyProcess? sync = null;
        system.WalletToOperator.Arm(new Fault(fault.Method, fault.Path, fault.Action, fault.Victim switch
        {
            Victim.Wallet => () => sync?.Kill(),
            Victim.Operator => system.KillOperator,
            _ => null,
        }));
        sync = system.StartSync(card);
        await sync.WaitAsync(TimeSpan.FromSeconds(90));
        var syncOutput = sync.Output;
        sync.Dispose();
        Assert.True(system.WalletToOperator.Fired.IsCompleted, $"The fault never fired. The sync said:\n{syncOutput}");
        system.WalletToOperator.Arm(null);

        // Recovery: the dead come back, the card syncs until nothing is owed.
        await system.ReviveAsync();
        for (var round = 0; round < 3 && (await system.SettlementsOfAsync(cardId)).Any(s => s.State != "reversed"); round++)
        {
            var (exit, output) = await system.SyncAsync(card);
            Assert.True(exit == 0, $"openpurse sync exited {exit}:\n{output}");
        }

        await WaitUntilAsync(system, cardId, s => s.State == "reversed" && s.StoreToldAt is not null, "the return to be taken and the store told");
        var (_, after) = ProcessSystem.ReadCard(card);
        Assert.Equal(before, after);
        Assert.Equal(after.MinorUnits, await system.CardAccountAsync(cardId));
        Assert.Equal("cancelled", await system.OrderStateAsync(Assert.Single(await system.SettlementsOfAsync(cardId)).OrderNo));
        var ledger = await system.ReconcileAsync();
        Assert.True(ledger.IsClean, ledger.ToText());
        output.WriteLine($"{name}: returned once, balance {after}");
    }

    private static Dictionary<string, (string Method, string Path, FaultAction Action, Victim Victim)> SyncCaseTable() => new()
    {
        ["sync-request-lost"] = ("POST", Sync, FaultAction.DropRequest, Victim.None),
        ["sync-answer-lost"] = ("POST", Sync, FaultAction.DropAnswer, Victim.None),
        ["sync-operator-dies-after-making-the-credit"] = ("POST", Sync, FaultAction.KillAfter, Victim.Operator),
        ["sync-wallet-dies-awaiting-the-credit"] = ("POST", Sync, FaultAction.KillAfter, Victim.Wallet),
        ["wallet-dies-while-card-takes-the-credit"] = ("POST", Sync, FaultAction.KillAfterDelivery, Victim.Wallet),
        ["credit-completion-lost"] = ("POST", CreditCompletion, FaultAction.DropRequest, Victim.None),
        ["credit-completion-wallet-dies-sending"] = ("POST", CreditCompletion, FaultAction.KillBefore, Victim.Wallet),
        ["credit-completion-operator-dies-before"] = ("POST", CreditCompletion, FaultAction.KillBefore, Victim.Operator),
        ["credit-completion-answer-lost"] = ("POST", CreditCompletion, FaultAction.DropAnswer, Victim.None),
        ["credit-completion-operator-dies-after-commit"] = ("POST", CreditCompletion, FaultAction.KillAfter, Victim.Operator),
    };

    private static async Task WaitUntilAsync(ProcessSystem system, CardId cardId,
        Func<(string SettlementId, string OrderNo, string State, string? StoreToldAt), bool> done, string what)
    {
        var deadline = DateTime.UtcNow + system.SettlementTimeout + TimeSpan.FromSeconds(30);
        while (true)
        {
            var settlements = await system.SettlementsOfAsync(cardId);
            if (settlements.All(done))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Waited in vain for {what}: {string.Join(", ", settlements.Select(s => $"{s.State} told {s.StoreToldAt ?? "no"}"))}");
            }

            await Task.Delay(100);
        }
    }
}

/// <summary>
/// The process system of each engine, started once and shared by that engine's cases, which run
/// one at a time. Disposed through IAsyncLifetime: xunit 2 does not dispose fixtures that are only
/// IAsyncDisposable, and the processes would outlive the test run.
/// </summary>
public sealed class ProcessSystemFixture : IAsyncLifetime
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SharedPostgresCluster _postgres = new();
    private readonly Dictionary<bool, ProcessSystem> _systems = [];

    internal async Task<ProcessSystem> SystemAsync(bool postgres, TimeSpan settlementTimeout, bool withAuthorizer = false)
    {
        await _gate.WaitAsync();
        try
        {
            if (!_systems.TryGetValue(postgres, out var system))
            {
                system = await ProcessSystem.StartAsync(postgres ? await _postgres.CreateDatabaseAsync() : null, settlementTimeout, withAuthorizer);
                _systems[postgres] = system;
            }

            return system;
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var system in _systems.Values)
        {
            await system.DisposeAsync();
        }

        _postgres.Dispose();
        _gate.Dispose();
    }
}

// Each engine's matrix is three classes, each with a system of its own: the test runner can then
// put a matrix beside the shorter suites instead of leaving one long class for last.

/// <summary>The fault matrix on SQLite, the card back before its settlement's deadline.</summary>
public sealed class FaultMatrixOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Fault_CardBackBeforeDeadline_AllAgree(string fault) => RunAsync(fault, cardBackAfterDeadline: false);
}

/// <summary>The fault matrix on SQLite, the card back after the sweeper expired its settlement.</summary>
public sealed class FaultMatrixAfterDeadlineOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override TimeSpan SettlementTimeout => ShortSettlementTimeout;

    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Fault_CardBackAfterDeadline_AllAgree(string fault) => RunAsync(fault, cardBackAfterDeadline: true);
}

/// <summary>The faults of a debit's return on SQLite.</summary>
public sealed class FaultMatrixReturnOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override TimeSpan SettlementTimeout => ShortSettlementTimeout;

    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(SyncCases))]
    public Task Fault_WhileADebitIsReturned_ReturnedOnce(string fault) => RunReturnAsync(fault);
}

/// <summary>The fault matrix on PostgreSQL, the card back before its settlement's deadline.</summary>
public sealed class FaultMatrixOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(Cases))]
    public Task Fault_CardBackBeforeDeadline_AllAgree(string fault) => RunAsync(fault, cardBackAfterDeadline: false);
}

/// <summary>The fault matrix on PostgreSQL, the card back after the sweeper expired its settlement.</summary>
public sealed class FaultMatrixAfterDeadlineOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override TimeSpan SettlementTimeout => ShortSettlementTimeout;

    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(Cases))]
    public Task Fault_CardBackAfterDeadline_AllAgree(string fault) => RunAsync(fault, cardBackAfterDeadline: true);
}

/// <summary>The faults of a debit's return on PostgreSQL.</summary>
public sealed class FaultMatrixReturnOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : FaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override TimeSpan SettlementTimeout => ShortSettlementTimeout;

    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(SyncCases))]
    public Task Fault_WhileADebitIsReturned_ReturnedOnce(string fault) => RunReturnAsync(fault);
}
