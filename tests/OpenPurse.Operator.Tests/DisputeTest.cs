using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Testing;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// A store that will not take a completed settlement's ACN: the sweeper tells it again less and
/// less often, then stops and leaves the settlement disputed, which <c>reconcile</c> lists; the
/// operator returns the amount to the card or tells the store again. The operator's clock is a
/// <see cref="FakeTimeProvider"/> and its hosted sweeper is off: the tests sweep. Every test runs
/// on each registry engine (the subclasses at the end of this file).
/// </summary>
public abstract class DisputeTest
{
    private const long Loaded = 10_000;

    private const long Price = 1_000;

    /// <summary>The operator's default: refusals of an ACN before the sweeper stops telling.</summary>
    private static readonly int s_refusalsMax = new OperatorOptions { DataDirectory = "." }.StoreRefusalsMax;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>A new PostgreSQL database for one kit, or null for SQLite.</summary>
    private protected abstract Task<PostgresDatabase?> CreateDatabaseAsync();

    [SuiteFact]
    public async Task StoreRefusesTheAcn_RetellsBackOffThenDisputed_ReturnedToTheCardAtItsNextSync()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        store.Refusal = "completion.mismatch";
        await using var kit = await StartKitAsync(store.CompletionsUrl);
        var settlementId = await PurchaseAsync(kit);

        await RetellUntilDisputedAsync(kit, store, settlementId);

        using (var returned = await kit.AdminPostAsync($"/v1/admin/settlements/{settlementId}/return"))
        {
            Assert.Equal(HttpStatusCode.OK, returned.StatusCode);
            Assert.Equal("reversing", (await returned.Content.ReadFromJsonAsync<SettlementView>(ProtocolJson.Options))!.State);
        }

        // Store → reversals: the ledger balances, and the card's account still holds what its chip holds.
        await kit.AssertBooksAsync(Eur(Loaded - Price));
        Assert.Empty((await kit.ReconcileAsync()).Disputed);
        using (var again = await kit.AdminPostAsync($"/v1/admin/settlements/{settlementId}/return"))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            Assert.Equal("settlement.not_disputed", await OperatorKit.CodeOf(again));
        }

        // The store is told the order is not paid.
        Assert.Equal((0, 1), await kit.SweepAsync());
        var voided = SignedMessage.Verify<VoidNotice>(Assert.Single(store.Voids), kit.OperatorKeys, MessageTypes.VoidNotice, out _);
        Assert.Equal((settlementId, VoidReasons.Returned, Eur(Price)), (voided!.SettlementId, voided.Reason, voided.Amount));

        // The card's next sync credits it, as for a debit found after its settlement expired.
        var credit = Assert.IsType<CardCredit>((await kit.SyncOkAsync()).Credit);
        Assert.Equal(settlementId, kit.ValueUpdateOf(credit).SourceId);
        var answer = kit.RunCredit(credit);
        Assert.Equal(StatusWord.Ok, answer.Status);
        Assert.Equal(new SettlementOutcome(settlementId, "reversed"), await kit.CompleteCreditOkAsync(credit.ValueUpdateId, answer));
        await kit.AssertBooksAsync(Eur(Loaded));
        Assert.Equal(0, StoreBalance(await kit.ReconcileAsync()));
    }

    [SuiteFact]
    public async Task StoreRefusesTheAcn_Disputed_ToldAgainCompletesOnceTheStoreAnswersAReceipt()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        store.Refusal = "completion.mismatch";
        await using var kit = await StartKitAsync(store.CompletionsUrl);
        var settlementId = await PurchaseAsync(kit);
        await RetellUntilDisputedAsync(kit, store, settlementId);

        using (var retold = await kit.AdminPostAsync($"/v1/admin/settlements/{settlementId}/retell"))
        {
            Assert.Equal(HttpStatusCode.OK, retold.StatusCode);
        }

        Assert.Equal("completed", await kit.StateOfAsync(settlementId));
        store.Refusal = null;
        store.Receipt = acn => kit.ReceiptFor(acn);
        Assert.Equal((0, 1), await kit.SweepAsync());

        Assert.NotNull((await kit.ViewAsync(settlementId)).Receipt);
        ((FakeTimeProvider)kit.Time).Advance(TimeSpan.FromDays(2));
        Assert.Equal((0, 0), await kit.SweepAsync());
        await kit.AssertBooksAsync(Eur(Loaded - Price));
        var report = await kit.ReconcileAsync();
        Assert.Empty(report.Disputed);
        Assert.Equal(Price, StoreBalance(report));
    }

    [SuiteFact]
    public async Task StoreUnreachableForADay_Disputed()
    {
        await using var store = await FakeStoreEndpoint.StartAsync(); // answers every ACN with 500
        await using var kit = await StartKitAsync(store.CompletionsUrl);
        var settlementId = await PurchaseAsync(kit);
        var time = (FakeTimeProvider)kit.Time;
        time.Advance(StoreNotifier.Timeout + TimeSpan.FromMilliseconds(1));

        Assert.Equal((0, 1), await kit.SweepAsync());
        for (var hour = 1; hour < 24; hour++)
        {
            time.Advance(TimeSpan.FromHours(1)); // the longest wait between two tellings
            Assert.Equal((0, 1), await kit.SweepAsync());
        }

        Assert.Equal("completed", await kit.StateOfAsync(settlementId));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal((0, 1), await kit.SweepAsync());

        // A day after the first telling failed: no refusal, but the store is given up on all the same.
        Assert.Equal("disputed", await kit.StateOfAsync(settlementId));
        Assert.Equal(1 + 1 + 24, store.Completions.Count); // round trip 2's own delivery, then the sweeps'
        Assert.Equal("HTTP 500", Assert.Single((await kit.ReconcileAsync()).Disputed).StoreAnswer);
    }

    [SuiteFact]
    public async Task VoidNoticeNotTaken_RetellsBackOffThenStopAndTheSettlementStaysExpired()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        store.VoidsFail = true;
        await using var kit = await StartKitAsync(store.CompletionsUrl);
        var bill = kit.Bill(Eur(Price));
        var started = await kit.StartOkAsync(bill); // the card never answers
        var time = (FakeTimeProvider)kit.Time;
        time.Advance(TimeSpan.FromMinutes(11));

        Assert.Equal((1, 1), await kit.SweepAsync());
        Assert.Equal((0, 0), await kit.SweepAsync()); // waiting
        time.Advance(OperatorOptions.DefaultSweepInterval);
        Assert.Equal((0, 1), await kit.SweepAsync());
        time.Advance(OperatorOptions.DefaultSweepInterval);
        Assert.Equal((0, 0), await kit.SweepAsync()); // the wait has doubled
        for (var hour = 0; hour < 24; hour++)
        {
            time.Advance(TimeSpan.FromHours(1));
            await kit.SweepAsync();
        }

        var toldInADay = store.Voids.Count;
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal((0, 0), await kit.SweepAsync()); // given up: it moves no money
        Assert.Equal(toldInADay, store.Voids.Count);
        Assert.Equal("expired", await kit.StateOfAsync(started.SettlementId));
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
        Assert.Empty(report.Disputed);
    }

    [SuiteFact]
    public async Task ResolveDispute_SettlementNotDisputed_RefusedAndNothingChanges()
    {
        await using var kit = await StartKitAsync();
        var settlementId = await PurchaseAsync(kit);

        using var returned = await kit.AdminPostAsync($"/v1/admin/settlements/{settlementId}/return");
        using var unknown = await kit.AdminPostAsync($"/v1/admin/settlements/{Guid.NewGuid()}/retell");

        Assert.Equal(HttpStatusCode.Conflict, returned.StatusCode);
        Assert.Equal("settlement.not_disputed", await OperatorKit.CodeOf(returned));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("completed", await kit.StateOfAsync(settlementId));
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    [SuiteFact]
    public async Task ResolveDispute_WithoutAnAdministratorsToken_RefusedAndNothingChanges()
    {
        await using var store = await FakeStoreEndpoint.StartAsync();
        store.Refusal = "completion.mismatch";
        await using var kit = await StartKitAsync(store.CompletionsUrl);
        var settlementId = await PurchaseAsync(kit);
        await RetellUntilDisputedAsync(kit, store, settlementId);

        using var anonymous = await kit.Admin.PostAsync($"/v1/admin/settlements/{settlementId}/return", null);
        using var auditor = await kit.AdminPostAsync($"/v1/admin/settlements/{settlementId}/return", OperatorKit.AuditorToken);
        using var publicListener = await kit.Http.PostAsync($"/v1/admin/settlements/{settlementId}/return", null);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, auditor.StatusCode);
        Assert.False(publicListener.IsSuccessStatusCode);
        Assert.Equal("disputed", await kit.StateOfAsync(settlementId));
        await kit.AssertBooksAsync(Eur(Loaded - Price));
    }

    /// <summary>
    /// Sweeps as the clock passes: each telling is refused, the next one waits twice as long as the
    /// last (none before), and after the last refusal the settlement is disputed and told no more.
    /// </summary>
    private static async Task RetellUntilDisputedAsync(OperatorKit kit, FakeStoreEndpoint store, Guid settlementId)
    {
        var time = (FakeTimeProvider)kit.Time;
        var toldBefore = store.Completions.Count;
        time.Advance(StoreNotifier.Timeout + TimeSpan.FromMilliseconds(1));
        var wait = OperatorOptions.DefaultSweepInterval;
        for (var attempt = 1; attempt <= s_refusalsMax; attempt++)
        {
            Assert.Equal("completed", await kit.StateOfAsync(settlementId));
            Assert.Equal((0, 1), await kit.SweepAsync());
            if (attempt < s_refusalsMax)
            {
                time.Advance(wait - TimeSpan.FromMilliseconds(1));
                Assert.Equal((0, 0), await kit.SweepAsync()); // still waiting
                time.Advance(TimeSpan.FromMilliseconds(1));
                wait += wait;
            }
        }

        Assert.Equal("disputed", await kit.StateOfAsync(settlementId));
        Assert.Equal(toldBefore + s_refusalsMax, store.Completions.Count);
        time.Advance(TimeSpan.FromDays(2));
        Assert.Equal((0, 0), await kit.SweepAsync());

        // The money stays with the store until the operator decides; reconcile says a decision is needed.
        await kit.AssertBooksAsync(Eur(Loaded - Price));
        var report = await kit.ReconcileAsync();
        var disputed = Assert.Single(report.Disputed);
        Assert.Equal((settlementId.ToString(), "HTTP 422 completion.mismatch"), (disputed.SettlementId, disputed.StoreAnswer));
        Assert.Contains($"settlement.disputed {settlementId}", report.ToText(), StringComparison.Ordinal);
        await using var services = new ServiceCollection().AddSingleton(kit.Service<Registry.Database>()).AddSingleton<Registry.Ledger>().BuildServiceProvider();
        using var output = new StringWriter();
        Assert.Equal(ReconcileCommand.ExitDecisionsNeeded, await ReconcileCommand.RunAsync(services, output, CancellationToken.None));
    }

    /// <summary>A purchase the card pays and the operator completes (round trip 2 tells the store at once).</summary>
    private static async Task<Guid> PurchaseAsync(OperatorKit kit)
    {
        var bill = kit.Bill(Eur(Price));
        var started = await kit.StartOkAsync(bill);
        using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bill));
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        return started.SettlementId;
    }

    private static long StoreBalance(Registry.LedgerReport report) => Assert.Single(report.Currencies).Stores;

    private async Task<OperatorKit> StartKitAsync(string? notifyUrl = null) =>
        await OperatorKit.StartAsync(Loaded, notifyUrl, await CreateDatabaseAsync(), sweepInterval: TimeSpan.Zero, time: new FakeTimeProvider(DateTimeOffset.UtcNow));
}

/// <summary>Disputes on the embedded default registry, SQLite.</summary>
public sealed class DisputeOnSqliteTest : DisputeTest
{
    private protected override Task<PostgresDatabase?> CreateDatabaseAsync() => Task.FromResult<PostgresDatabase?>(null);
}

/// <summary>Disputes on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class DisputeOnPostgreSqlTest(SharedPostgresCluster postgres) : DisputeTest, IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<PostgresDatabase?> CreateDatabaseAsync() => await postgres.CreateDatabaseAsync();
}
