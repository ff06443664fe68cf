using System.Diagnostics;
using OpenPurse.Protocol;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// The fault matrix of a top-up by credit card (docs/reliability.md, "Top-up by credit card"):
/// the wallet (<c>openpurse topup</c>), the operator and the credit authorizer
/// (<c>openpurse-authorizer serve</c>, test mode) run as processes; for each message of the
/// top-up — the wallet's request and the CREDIT's completion, the operator's authorize, capture and
/// void — the message or its answer is lost, or a process is killed for real before or after it
/// was handled; the card is pulled in the middle of its CREDIT; the authorizer times out or fails
/// once. Then the dead come back, the card comes online again (<c>openpurse sync</c>) and the
/// sweeper runs, and the three parties must agree: the card's balance, the operator's ledger and
/// the authorizer's own record of captures and voids — captured exactly when the card took the
/// credit, voided or never captured when it did not, never two authorizations for one top-up. A
/// top-up left authorizing is abandoned by the sweeper (the system's operator allows 8 s) and its
/// approval, if one was made, voided.
/// </summary>
public abstract class TopUpFaultMatrixTest(ProcessSystemFixture fixture, ITestOutputHelper output)
{
    private const string TopUp = "^/v1/topups$";
    private const string TopUpCompletion = "^/v1/topups/[^/]+/completion$";
    private const string Authorize = "^/v1/authorizations$";
    private const string Capture = "^/v1/authorizations/[^/]+/capture$";
    private const string Void = "^/v1/authorizations/[^/]+/void$";

    // The authorizer's test cards (docs/authorizer.md).
    private const string Approves = "4242 4242 4242 4242";
    private const string TimesOut = "4000 0000 0000 0259";
    private const string FailsOnce = "4000 0000 0000 3410";

    // What a top-up may end as once everything is back (TopUps/TopUpStates.cs); "none": never recorded.
    private const string None = "none";
    private const string Captured = "captured";
    private const string Voided = "voided";

    private static readonly Money s_load = Money.Parse("50.00 EUR");
    private static readonly Money s_amount = Money.Parse("20.00 EUR");

    /// <summary>Every fault of a top-up.</summary>
    public static TheoryData<string> Cases { get; } = [.. CaseTable().Keys];

    private protected abstract bool UsesPostgres { get; }

    private protected async Task RunAsync(string name)
    {
        var system = await fixture.SystemAsync(UsesPostgres, TimeSpan.FromMinutes(10), withAuthorizer: true);
        var @case = CaseTable()[name];
        var clock = Stopwatch.StartNew();
        var card = await system.IssueCardAsync($"{name}-topup", s_load);
        var (cardId, before) = ProcessSystem.ReadCard(card);

        // The top-up, with its faults armed (one per relay; a void's fault fires only in the recovery's sync).
        PartyProcess? wallet = null;
        foreach (var fault in @case.Faults)
        {
            RelayOf(system, fault.Link).Arm(new Fault(fault.Method, fault.Path, fault.Action, fault.Victim switch
            {
                Victim.Wallet => () => wallet?.Kill(),
                Victim.Operator => system.KillOperator,
                Victim.Authorizer => system.KillAuthorizer,
                _ => null,
            }));
        }

        wallet = system.StartTopUp(card, s_amount, @case.CardNumber);
        var exit = await wallet.WaitAsync(TimeSpan.FromSeconds(90));
        var walletOutput = wallet.Output;
        wallet.Dispose();

        // Recovery: the dead come back, the card comes online, the sweeper captures and voids what is
        // due. A fault of the recovery (a void's) may take a process down again: it comes back too.
        await system.ReviveAsync();
        var (syncExit, syncOutput) = await system.SyncAsync(card);
        await system.ReviveAsync();
        if (syncExit != 0)
        {
            (syncExit, syncOutput) = await system.SyncAsync(card);
        }

        Assert.True(syncExit == 0, $"openpurse sync exited {syncExit}:\n{syncOutput}");
        foreach (var fault in @case.Faults)
        {
            Assert.True(RelayOf(system, fault.Link).Fired.IsCompleted, $"The fault on {fault.Path} never fired: the top-up did not reach that step. Wallet said:\n{walletOutput}");
            RelayOf(system, fault.Link).Arm(null);
        }

        var topUps = await WaitUntilSettledAsync(system, cardId);

        // Agreement: the card, the operator's ledger, the authorizer.
        var (_, after) = ProcessSystem.ReadCard(card);
        var took = topUps.Where(t => t.State == Captured).Sum(t => t.AmountMinor);
        Assert.True(topUps.Count <= 1, $"One top-up was asked for; the operator holds {topUps.Count}.");
        Assert.Equal(before.MinorUnits + took, after.MinorUnits);
        Assert.Equal(after.MinorUnits, await system.CardAccountAsync(cardId));
        var outcome = topUps.Count == 0 ? None : topUps[0].State;
        Assert.True(@case.Outcomes.Contains(outcome), $"{name}: the top-up ended {outcome}, expected {string.Join(" or ", @case.Outcomes)}. Wallet said:\n{walletOutput}");

        var authorizations = await system.AuthorizationsAsync();
        var known = (await system.AllTopUpIdsAsync()).ToHashSet(StringComparer.Ordinal);
        Assert.All(authorizations, a => Assert.True(known.Contains(a.Reference), $"The authorizer holds authorization {a.Id} for {a.Reference}, a top-up the operator never recorded."));
        foreach (var topUp in topUps)
        {
            var of = authorizations.Where(a => a.Reference == topUp.TopUpId).ToList();
            Assert.True(of.Count <= 1, $"Top-up {topUp.TopUpId} has {of.Count} authorizations: charged twice.");
            var authorization = of.SingleOrDefault();
            switch (topUp.State)
            {
                case Captured:
                    Assert.NotNull(authorization);
                    Assert.True(authorization.CapturedAt is not null && authorization.CapturedMinor == topUp.AmountMinor && authorization.VoidedAt is null,
                        $"The card took top-up {topUp.TopUpId}, but the authorizer's record is {authorization}.");
                    break;
                case Voided:
                    Assert.True(authorization is null || (authorization.VoidedAt is not null && authorization.CapturedAt is null),
                        $"The card never took top-up {topUp.TopUpId}, but the authorizer's record is {authorization}.");
                    break;
                default:
                    // Declined: nothing charged.
                    Assert.True(authorization is null || authorization.CapturedAt is null,
                        $"Top-up {topUp.TopUpId} is {topUp.State}, but the authorizer captured it: {authorization}.");
                    break;
            }
        }

        if (exit == 0)
        {
            Assert.Equal(Captured, outcome);
            Assert.Contains("Added", walletOutput, StringComparison.Ordinal);
        }

        var ledger = await system.ReconcileAsync();
        Assert.True(ledger.IsClean, ledger.ToText());
        output.WriteLine($"{name}: wallet exit {exit?.ToString() ?? "none"}, top-up {outcome}, authorizer "
            + $"{string.Join(", ", topUps.SelectMany(t => authorizations.Where(a => a.Reference == t.TopUpId)).Select(a => a.CapturedAt is not null ? "captured" : a.VoidedAt is not null ? "voided" : a.Status))}, "
            + $"balance {before} → {after}, {clock.ElapsedMilliseconds} ms");
    }

    private static Relay RelayOf(ProcessSystem system, Link link) => link == Link.WalletToOperator ? system.WalletToOperator : system.OperatorToAuthorizer!;

    // Until no top-up of the card waits for its authorization, a capture or a void (the sweeper's
    // work: an abandon 8 s after the wallet last asked, the look-up once the authorizer's time-out
    // has passed), or 30 s.
    private static async Task<IReadOnlyList<(string TopUpId, string State, long AmountMinor)>> WaitUntilSettledAsync(ProcessSystem system, CardId cardId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var topUps = await system.TopUpsOfAsync(cardId);
            if (topUps.All(t => t.State is Captured or Voided or "declined"))
            {
                return topUps;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Waited in vain for the top-up to be captured or voided: {string.Join(", ", topUps.Select(t => t.State))}");
            }

            await Task.Delay(100);
        }
    }

    private enum Link
    {
        WalletToOperator,
        OperatorToAuthorizer,
    }

    private enum Victim
    {
        None,
        Wallet,
        Operator,
        Authorizer,
    }

    private sealed record CaseFault(Link Link, string Method, string Path, FaultAction Action, Victim Victim);

    /// <param name="CardNumber">The authorizer's test card charged.</param>
    /// <param name="Outcomes">What the top-up may end as: one state, or two where the fault races the card.</param>
    /// <param name="Faults">At most one per relay.</param>
    private sealed record Case(string CardNumber, string[] Outcomes, params CaseFault[] Faults);

    private static CaseFault W(string path, FaultAction action, Victim victim = Victim.None) => new(Link.WalletToOperator, "POST", path, action, victim);

    private static CaseFault A(string path, FaultAction action, Victim victim = Victim.None) => new(Link.OperatorToAuthorizer, "POST", path, action, victim);

    // Each case a distinct path through the operator's and the authorizer's code; the faults that
    // look the same from there (the wallet dying sending a request and the request lost) once.
    private static Dictionary<string, Case> CaseTable() => new()
    {
        // The wallet's request: nothing recorded, or recorded and its CREDIT never run (the sync voids it).
        ["topup-request-lost"] = new(Approves, [None], W(TopUp, FaultAction.DropRequest)),
        ["topup-operator-dies-before"] = new(Approves, [None], W(TopUp, FaultAction.KillBefore, Victim.Operator)),
        ["topup-answer-lost"] = new(Approves, [Voided], W(TopUp, FaultAction.DropAnswer)),
        ["topup-operator-dies-after-commit"] = new(Approves, [Voided], W(TopUp, FaultAction.KillAfter, Victim.Operator)),
        // The card pulled mid-CREDIT: the wallet dies the moment the CREDIT arrives; the card took it or not.
        ["card-pulled-mid-credit"] = new(Approves, [Captured, Voided], W(TopUp, FaultAction.KillAfterDelivery, Victim.Wallet)),
        // The CREDIT's completion: the card took it; the sync (or the completion itself) credits and captures.
        ["completion-lost"] = new(Approves, [Captured], W(TopUpCompletion, FaultAction.DropRequest)),
        ["completion-operator-dies-before"] = new(Approves, [Captured], W(TopUpCompletion, FaultAction.KillBefore, Victim.Operator)),
        ["completion-answer-lost"] = new(Approves, [Captured], W(TopUpCompletion, FaultAction.DropAnswer)),
        // The authorization: the wallet's same request asks again under the same key, or, with the
        // authorizer or the operator dead, the wallet gives up; the sweeper abandons the top-up and
        // voids the approval if the authorizer made one.
        ["authorize-request-lost"] = new(Approves, [Captured], A(Authorize, FaultAction.DropRequest)),
        ["authorize-answer-lost"] = new(Approves, [Captured], A(Authorize, FaultAction.DropAnswer)),
        ["authorizer-dies-before-authorizing"] = new(Approves, [Voided], A(Authorize, FaultAction.KillBefore, Victim.Authorizer)),
        ["authorizer-dies-after-authorizing"] = new(Approves, [Voided], A(Authorize, FaultAction.KillAfter, Victim.Authorizer)),
        ["operator-dies-awaiting-authorization"] = new(Approves, [Voided], A(Authorize, FaultAction.KillAfter, Victim.Operator)),
        ["authorizer-times-out"] = new(TimesOut, [Captured]),
        ["authorizer-fails-once"] = new(FailsOnce, [Captured]),
        // The capture, after the commit that posted the credit: the sweeper captures what is credited.
        ["capture-lost"] = new(Approves, [Captured], A(Capture, FaultAction.DropRequest)),
        ["capture-answer-lost"] = new(Approves, [Captured], A(Capture, FaultAction.DropAnswer)),
        ["operator-dies-before-capture"] = new(Approves, [Captured], A(Capture, FaultAction.KillBefore, Victim.Operator)),
        ["authorizer-dies-capturing"] = new(Approves, [Captured], A(Capture, FaultAction.KillAfter, Victim.Authorizer)),
        // The void, after the sync's commit that proved the CREDIT never ran (the top-up's answer lost first).
        ["void-lost"] = new(Approves, [Voided], W(TopUp, FaultAction.DropAnswer), A(Void, FaultAction.DropRequest)),
        ["void-answer-lost"] = new(Approves, [Voided], W(TopUp, FaultAction.DropAnswer), A(Void, FaultAction.DropAnswer)),
        ["operator-dies-before-void"] = new(Approves, [Voided], W(TopUp, FaultAction.DropAnswer), A(Void, FaultAction.KillBefore, Victim.Operator)),
        ["authorizer-dies-voiding"] = new(Approves, [Voided], W(TopUp, FaultAction.DropAnswer), A(Void, FaultAction.KillAfter, Victim.Authorizer)),
    };
}

/// <summary>The top-up's fault matrix on SQLite.</summary>
public sealed class TopUpFaultMatrixOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : TopUpFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringATopUp_CardLedgerAndAuthorizerAgree(string fault) => RunAsync(fault);
}

/// <summary>The top-up's fault matrix on PostgreSQL.</summary>
public sealed class TopUpFaultMatrixOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : TopUpFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringATopUp_CardLedgerAndAuthorizerAgree(string fault) => RunAsync(fault);
}
