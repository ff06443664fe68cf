using System.Diagnostics;
using System.Text.RegularExpressions;
using OpenPurse.Protocol;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// The fault matrix of value taken off a card (docs/reliability.md, "Transfer and cash-out"): card A
/// transfers to card B (<c>openpurse transfer</c>), then B syncs and takes the CREDIT; or A cashes
/// out to a bank account (<c>openpurse cashout</c>). One message is lost, or its answer, or a
/// process is killed for real around it — the request, the DEBIT's completion, B's CREDIT's
/// completion — or card A is pulled in the middle of its DEBIT. Then the dead come back, A syncs
/// (its greeting resolves the open DEBIT) and B syncs until it is owed nothing. A lost the amount
/// exactly when B gained it (or the payout is due), once; B is never credited without A debited.
/// </summary>
public abstract class DecreaseFaultMatrixTest(ProcessSystemFixture fixture, ITestOutputHelper output)
{
    private const string Transfer = "^/v1/transfers$";
    private const string TransferCompletion = "^/v1/transfers/[^/]+/completion$";
    private const string CashOut = "^/v1/cashouts$";
    private const string CashOutCompletion = "^/v1/cashouts/[^/]+/completion$";
    private const string CreditCompletion = "^/v1/cards/credits/[^/]+/completion$";

    // What a transfer or cash-out may end as once everything is back; "none": never recorded.
    private const string None = "none";
    private const string Debited = "debited";
    private const string Abandoned = "abandoned";

    private static readonly Money s_loadA = Money.Parse("50.00 EUR");
    private static readonly Money s_loadB = Money.Parse("20.00 EUR");
    private static readonly Money s_amount = Money.Parse("7.50 EUR");

    /// <summary>Every fault of a transfer or a cash-out.</summary>
    public static TheoryData<string> Cases { get; } = [.. CaseTable().Keys];

    private protected abstract bool UsesPostgres { get; }

    private protected async Task RunAsync(string name)
    {
        var system = await fixture.SystemAsync(UsesPostgres, TimeSpan.FromMinutes(10));
        var @case = CaseTable()[name];
        var clock = Stopwatch.StartNew();
        var cardA = await system.IssueCardAsync($"{name}-a", s_loadA);
        var cardB = await system.IssueCardAsync($"{name}-b", s_loadB);
        var (idA, _) = ProcessSystem.ReadCard(cardA);
        var (idB, _) = ProcessSystem.ReadCard(cardB);

        // The transfer or cash-out, with its fault unless the fault waits for B's sync.
        PartyProcess? wallet = null;
        var fault = new Fault("POST", @case.Path, @case.Action, @case.Victim switch
        {
            Victim.Wallet => () => wallet?.Kill(),
            Victim.Operator => system.KillOperator,
            _ => null,
        });
        if (!@case.AtPayeeSync)
        {
            system.WalletToOperator.Arm(fault);
        }

        wallet = @case.CashOut ? system.StartCashOut(cardA, s_amount) : system.StartTransfer(cardA, idB, s_amount);
        var exit = await wallet.WaitAsync(TimeSpan.FromSeconds(90));
        var walletOutput = wallet.Output;
        wallet.Dispose();
        if (!@case.AtPayeeSync)
        {
            Assert.True(system.WalletToOperator.Fired.IsCompleted, $"The fault on {@case.Path} never fired. Wallet said:\n{walletOutput}");
            system.WalletToOperator.Arm(null);
        }

        // Recovery: the dead come back; A's greeting resolves its open DEBIT.
        await system.ReviveAsync();
        await SyncAsync(system, cardA);

        // B takes what it is owed, with the fault of its sync if that is the case's.
        if (@case.AtPayeeSync)
        {
            system.WalletToOperator.Arm(fault);
            using (var sync = system.StartSync(cardB))
            {
                await sync.WaitAsync(TimeSpan.FromSeconds(90));
                Assert.True(system.WalletToOperator.Fired.IsCompleted, $"The fault on {@case.Path} never fired. The sync said:\n{sync.Output}");
            }

            system.WalletToOperator.Arm(null);
            await system.ReviveAsync();
        }

        for (var round = 0; round < 4 && (round == 0 || (await system.CardCreditsOfAsync(idB)).Any(c => c.State != "credited")); round++)
        {
            await SyncAsync(system, cardB);
        }

        // Agreement: A lost the amount exactly when it was debited, once; B gained exactly that.
        var decreases = await system.DecreasesOfAsync(idA, @case.CashOut);
        Assert.True(decreases.Count <= 1, $"One {(@case.CashOut ? "cash-out" : "transfer")} was asked for; the operator holds {decreases.Count}.");
        var outcome = decreases.Count == 0 ? None : decreases[0].State;
        Assert.True(@case.Outcomes.Contains(outcome), $"{name}: ended {outcome}, expected {string.Join(" or ", @case.Outcomes)}. Wallet said:\n{walletOutput}");
        var debited = decreases.Where(d => d.State == Debited).ToList();
        var taken = debited.Sum(d => d.AmountMinor);
        var (_, afterA) = ProcessSystem.ReadCard(cardA);
        var (_, afterB) = ProcessSystem.ReadCard(cardB);
        Assert.Equal(s_loadA.MinorUnits - taken, afterA.MinorUnits);
        Assert.Equal(afterA.MinorUnits, await system.CardAccountAsync(idA));
        Assert.Equal(afterB.MinorUnits, await system.CardAccountAsync(idB));
        var credits = await system.CardCreditsOfAsync(idB);
        if (@case.CashOut)
        {
            Assert.Empty(credits);
            Assert.Equal(s_loadB, afterB);
            foreach (var decrease in decreases)
            {
                var payouts = await system.EntriesAsync("payouts", decrease.Id);
                Assert.Equal(decrease.State == Debited ? new[] { decrease.AmountMinor } : [], payouts);
            }
        }
        else
        {
            // Every transfer A ran is one credit B took; none for one A never ran.
            Assert.Equal(debited.Select(d => ("transfer", d.Id, "credited", d.AmountMinor)), credits);
            Assert.Equal(s_loadB.MinorUnits + taken, afterB.MinorUnits);
        }

        if (exit == 0)
        {
            Assert.Equal(Debited, outcome);
        }
        else if (exit is not null && outcome == Debited && !@case.AtPayeeSync)
        {
            // The card gave the value and the wallet failed after: it says so, lest the person send it again.
            Assert.Contains("Your card gave the", Regex.Replace(walletOutput, @"\s+", " "), StringComparison.Ordinal);
        }

        var ledger = await system.ReconcileAsync();
        Assert.True(ledger.IsClean, ledger.ToText());
        output.WriteLine($"{name}: wallet exit {exit?.ToString() ?? "none"}, {outcome}, A {s_loadA} → {afterA}, B {s_loadB} → {afterB}, {clock.ElapsedMilliseconds} ms");
    }

    private static async Task SyncAsync(ProcessSystem system, string card)
    {
        var (exit, syncOutput) = await system.SyncAsync(card);
        Assert.True(exit == 0, $"openpurse sync exited {exit}:\n{syncOutput}");
    }

    private enum Victim
    {
        None,
        Wallet,
        Operator,
    }

    /// <param name="CashOut">A cash-out; a transfer when false.</param>
    /// <param name="AtPayeeSync">The fault is in B's sync, after the transfer.</param>
    /// <param name="Outcomes">What the transfer or cash-out may end as: one state, or two where the fault races the card.</param>
    private sealed record Case(bool CashOut, bool AtPayeeSync, string Path, FaultAction Action, Victim Victim, params string[] Outcomes);

    private static Case T(string path, FaultAction action, Victim victim, params string[] outcomes) => new(false, false, path, action, victim, outcomes);

    private static Case C(string path, FaultAction action, Victim victim, params string[] outcomes) => new(true, false, path, action, victim, outcomes);

    // Each case a distinct path through the operator's value decrease and card credit code.
    private static Dictionary<string, Case> CaseTable() => new()
    {
        // The request: nothing recorded, or the DEBIT made and never run: A's greeting abandons it.
        ["transfer-request-lost"] = T(Transfer, FaultAction.DropRequest, Victim.None, None),
        ["transfer-answer-lost"] = T(Transfer, FaultAction.DropAnswer, Victim.None, Abandoned),
        ["transfer-operator-dies-after-commit"] = T(Transfer, FaultAction.KillAfter, Victim.Operator, Abandoned),
        // Card A pulled mid-DEBIT: it ran it or not, A's greeting shows which.
        ["transfer-card-pulled-mid-debit"] = T(Transfer, FaultAction.KillAfterDelivery, Victim.Wallet, Debited, Abandoned),
        // The DEBIT's completion: the card ran it; A's greeting finds it in its log (or the completion posted it).
        ["transfer-completion-lost"] = T(TransferCompletion, FaultAction.DropRequest, Victim.None, Debited),
        ["transfer-completion-answer-lost"] = T(TransferCompletion, FaultAction.DropAnswer, Victim.None, Debited),
        // B's CREDIT's completion lost: B's next greeting finds the CREDIT in its log, no second one.
        ["payee-credit-completion-lost"] = new(false, true, CreditCompletion, FaultAction.DropRequest, Victim.None, [Debited]),
        // A cash-out: the payout is due exactly when the card ran its DEBIT.
        ["cashout-answer-lost"] = C(CashOut, FaultAction.DropAnswer, Victim.None, Abandoned),
        ["cashout-card-pulled-mid-debit"] = C(CashOut, FaultAction.KillAfterDelivery, Victim.Wallet, Debited, Abandoned),
        ["cashout-completion-lost"] = C(CashOutCompletion, FaultAction.DropRequest, Victim.None, Debited),
    };
}

/// <summary>The fault matrix of transfers and cash-outs on SQLite.</summary>
public sealed class DecreaseFaultMatrixOnSqliteTest(ProcessSystemFixture fixture, ITestOutputHelper output) : DecreaseFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => false;

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringATransferOrCashOut_BothCardsAndTheLedgerAgree(string fault) => RunAsync(fault);
}

/// <summary>The fault matrix of transfers and cash-outs on PostgreSQL.</summary>
public sealed class DecreaseFaultMatrixOnPostgreSqlTest(ProcessSystemFixture fixture, ITestOutputHelper output) : DecreaseFaultMatrixTest(fixture, output), IClassFixture<ProcessSystemFixture>
{
    private protected override bool UsesPostgres => true;

    [IntegrationTheory(Components.PostgreSql)]
    [MemberData(nameof(Cases))]
    public Task Fault_DuringATransferOrCashOut_BothCardsAndTheLedgerAgree(string fault) => RunAsync(fault);
}
