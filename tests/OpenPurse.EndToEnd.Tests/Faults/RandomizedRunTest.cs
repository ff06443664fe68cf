using System.Diagnostics;
using System.Globalization;
using System.Text;
using Dapper;
using OpenPurse.Hosting;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store.Orders;
using OpenPurse.Testing;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Xunit.Abstractions;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>
/// A seeded randomized run of the whole system in this process (docs/protocol.md, the recovery
/// of OpenPurse.Operator/Settlement): hundreds of purchases by a few cards, each with a fault
/// schedule drawn from the seed — none; a dropped request or a lost answer of one of the wallet's
/// calls (round trips 1 and 2, key fetches, the store's calls, card sync and credit completion) or
/// of the operator's delivery to the store; the operator restarted before or after a call (same data,
/// new port); the wallet stalled past the settlement timeout; the card pulled before or after one of
/// its commands; the card's memory write torn at a random byte during the DEBIT or a CREDIT (the card
/// comes back from its file); the wallet dying at a step of its flow, or the person declining —
/// sometimes two at once. Between purchases a card syncs now and then (faults may meet it too), and
/// time sometimes passes beyond the settlement timeout so the sweeper expires what waits.
/// Among the purchases are top-ups by credit card (the in-process credit authorizer's test cards:
/// approved, failing once, declined, timing out), with faults of their own: the wallet's top-up
/// request and the CREDIT's completion lost or the operator restarted around them, the operator's
/// authorize, capture and void lost on the way to the authorizer or back, the card pulled or torn
/// during its CREDIT, the wallet dying at a step, the person declining the top-up.
/// About one operation in ten is one of the card credits' movements instead: a store owner's refund
/// of an order the run paid (through the store's RefundDesk and its signed <c>POST /v1/refunds</c>,
/// full or partial, with the store's call lost, its answer lost or the operator restarted around it;
/// sometimes asked again at once, or the same signed request sent again; sometimes one that would
/// pass what is left, to the store or straight to the operator), a transfer to another card of the
/// run or a cash-out to a bank account (DecreaseFlow, with the top-up's kinds of faults around the
/// request, the completion and the DEBIT).
/// On a highly available registry (OpenPurse.Failover.Tests' RandomizedRunOnPatroniTest) one more
/// fault: the registry's primary killed, its Patroni and PostgreSQL at once, before or after a
/// purchase's round trip, a top-up's, transfer's or cash-out's request or completion, or a refund;
/// up to three times a run, the cluster electing a new leader and the killed member rejoining as a
/// standby in the background before the next kill. Requests during a failover meet
/// <c>503 operator.busy</c>.
/// </summary>
/// <remarks>
/// <para>
/// Afterwards, without faults: the operator restarts once more, the sweeper expires what is
/// overdue, every card syncs until no CREDIT comes back, and every settlement must end final
/// (completed, voided or reversed) with its store told. Then the invariant must be whole: each
/// card's chip balance equals its journal account and the operator's shadow, and its load less what
/// its completed settlements took; chips + stores + reversals equal what was issued; the ledger
/// reconciles; every order the store holds is paid exactly when its settlement completed and
/// cancelled exactly when it was voided or reversed, and a billed order has no settlement; every
/// purchase the wallet reported paid has a completed settlement. For the top-ups: each card's chip
/// also holds every top-up the operator posted; the authorizer captured exactly the top-ups the
/// cards took and no other, voided or never captured the rest, and holds at most one authorization
/// per top-up; every top-up the wallet reported done is captured. For the card credits: the final
/// syncs go on until no card credit is owed and no DEBIT of a transfer or cash-out is open, each
/// chip also holds the card credits it took less the transfers and cash-outs it ran, and the books
/// hold pending and payouts too (pending empty); a refund too much is refused and writes nothing; the
/// same signed refund again answers its notice and writes nothing; every refund the store holds as
/// owed or credited is at the operator with its amount (one the store never got an answer to is
/// asked again first), no settlement is refunded past what it paid, and every refund's card credit
/// was taken; a transfer the card ran owes its payee exactly one card credit, taken, and a cash-out
/// one payout, the others neither; every refund, transfer and cash-out the store or wallet reported
/// done is at the operator (debited, for the last two), and one that lost the card only at the
/// balance read after its DEBIT was reported must be reported done.
/// </para>
/// <para>
/// A wallet's operation or sync may end in a <see cref="WalletException"/> (or the wallet dying as
/// scheduled), a refund in the store's refusal; any other exception is a finding. With the primary
/// killed, the final phase waits until the cluster has a leader and the killed members stream from
/// it again; the invariant is read from the new primary. The seed is printed
/// first and in every failure: <c>OPENPURSE_FAULT_SEED=&lt;seed&gt;</c> runs that seed again (<c>OPENPURSE_FAULT_PURCHASES</c>
/// changes the count). The seed fixes every choice and schedule; the timing of the sweeper and of
/// restarts is the machine's, so a run replays its faults, not necessarily every interleaving.
/// </para>
/// <para>
/// Tearing opens the card over a <see cref="Testing.TearingStream"/> (<c>EmulatedCard.Open(Stream)</c>,
/// internal to OpenPurse.Card and visible to these tests).
/// </para>
/// </remarks>
public abstract class RandomizedRunTest(ITestOutputHelper output)
{
    private const int Cards = 20;
    private const int PurchasesDefault = 300;
    private const int SyncRoundsMax = 5;
    private const double FaultFreeShare = 0.30;
    private const double TwoFaultsShare = 0.15;
    private const double SyncBetweenShare = 0.10;
    private const double WaitBetweenShare = 0.05;
    private const double TopUpShare = 0.15;
    private const double RefundShare = 0.05;
    private const double TransferShare = 0.04;
    private const double CashOutShare = 0.02;

    // The authorizer's test cards (docs/authorizer.md), PIN 1234.
    private const string Approves = "4242424242424242";
    private const string FailsOnce = "4000000000003410";
    private const string Declines = "4000000000000002";
    private const string TimesOut = "4000000000000259";

    private static readonly TimeSpan s_settlementTimeout = TimeSpan.FromMilliseconds(1500);
    private static readonly TimeSpan s_sweepInterval = TimeSpan.FromMilliseconds(150);
    private static readonly TimeSpan s_settleWaitMax = TimeSpan.FromSeconds(60);
    private static readonly Money s_load = Money.Parse("200.00 EUR");

    /// <summary>The mall's articles (DemoSystem.Members).</summary>
    private static readonly (string Sku, string StoreId)[] s_items = [("book-001", "books"), ("book-002", "books"), ("song-001", "tunes")];

    private static readonly byte[] s_purchaseCommands =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.ExternalAuthenticate,
         PurseInstruction.Debit, PurseInstruction.Debit, PurseInstruction.Debit, PurseInstruction.GetData, PurseInstruction.Credit];

    private static readonly byte[] s_topUpCommands =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Credit, PurseInstruction.Credit, PurseInstruction.GetData];

    private static readonly byte[] s_decreaseCommands =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Debit, PurseInstruction.Debit, PurseInstruction.GetData];

    /// <summary>Bank accounts a cash-out pays to (valid IBANs of three countries).</summary>
    private static readonly string[] s_ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"];

    private static readonly byte[] s_syncCommands =
        [PurseInstruction.Select, PurseInstruction.InitializeUpdate, PurseInstruction.ExternalAuthenticate, PurseInstruction.Credit, PurseInstruction.Credit, PurseInstruction.GetData];

    private readonly List<string> _problems = [];
    private readonly Dictionary<string, (int Planned, int Fired)> _faults = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _outcomes = new(StringComparer.Ordinal);
    private int _seed;
    private IRegistryFaults? _registryFaults;

    /// <param name="registryFaults">The registry's own faults (its primary killed), for a highly available registry.</param>
    /// <param name="purchasesDefault">How many operations, unless <c>OPENPURSE_FAULT_PURCHASES</c> says.</param>
    private protected async Task RunAsync(int defaultSeed, string? postgresConnectionString, IRegistryFaults? registryFaults = null, int purchasesDefault = PurchasesDefault)
    {
        _seed = int.TryParse(Environment.GetEnvironmentVariable("OPENPURSE_FAULT_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var given) ? given : defaultSeed;
        var purchases = int.TryParse(Environment.GetEnvironmentVariable("OPENPURSE_FAULT_PURCHASES"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var count) && count > 0 ? count : purchasesDefault;
        var engine = postgresConnectionString is null ? "SQLite" : registryFaults is null ? "PostgreSQL" : "PostgreSQL under Patroni, its primary killed";
        output.WriteLine($"seed {_seed} (OPENPURSE_FAULT_SEED={_seed} runs it again); {purchases} operations by {Cards} cards on {engine}");
        var random = new Random(_seed);
        _registryFaults = registryFaults;
        registryFaults?.Schedule(_seed, purchases);
        var clock = Stopwatch.StartNew();
        var log = new ServerLog();
        await using var system = await InProcessSystem.StartAsync(postgresConnectionString, log, s_settlementTimeout, s_sweepInterval);
        system.RegistryFaults = registryFaults;
        var cards = new List<CardSlot>();
        try
        {
            for (var i = 0; i < Cards; i++)
            {
                cards.Add(await system.IssueCardAsync($"card-{i:D2}", s_load));
            }

            var slotLength = cards[0].SlotLength;
            output.WriteLine($"a card's memory write is {slotLength} bytes; tears cut it after 0 to {slotLength} of them");
            var setUp = clock.Elapsed;

            // The run: purchases with faults, syncs and waits between them.
            var paid = new List<(int Purchase, PurchaseResult Result)>();
            var toppedUp = new List<(int Operation, TopUpResult Result)>();
            var refunded = new List<(int Operation, RefundView Refund)>();
            var refundedOrders = new List<PurchaseResult>();
            var decreased = new List<(int Operation, DecreaseResult Result)>();
            var expiry = DateTime.UtcNow.AddYears(3).ToString("MM/yy", CultureInfo.InvariantCulture);
            var owed = new List<CardSlot>();
            var (syncs, waits) = (0, 0);
            async Task SyncBetweenAsync(CardSlot syncCard, string when)
            {
                owed.Remove(syncCard);
                syncs++;
                var syncPlan = new FaultPlan(random.Next(2) == 0 ? [] : DrawFaults(random, slotLength, forSync: true));
                await RunFlowAsync(system, syncPlan, $"sync {when} ({syncCard.CardId.Masked})",
                    () => new CardSyncFlow(new OperatorApi(system.WalletOperator), syncCard, new FaultyPrompt(syncPlan)).RunAsync(CancellationToken.None));
            }

            for (var n = 1; n <= purchases; n++)
            {
                var card = cards[random.Next(cards.Count)];
                var kind = random.NextDouble();
                if (kind >= TopUpShare && kind < TopUpShare + RefundShare && paid.Count > 0)
                {
                    // A store owner refunds an order the run paid earlier.
                    // A third of them of an order refunded before: what is left shrinks, and some ask too much.
                    var earlier = refundedOrders.Count > 0 && random.Next(3) == 0 ? refundedOrders[random.Next(refundedOrders.Count)] : paid[random.Next(paid.Count)].Result;
                    if (await RefundOrderAsync(system, random, n, earlier) is { } refund)
                    {
                        refundedOrders.Add(earlier);
                        refunded.Add((n, refund));
                        if (cards.FirstOrDefault(c => c.CardId.Masked == earlier.CardMasked) is { } refundedCard && !owed.Contains(refundedCard))
                        {
                            owed.Add(refundedCard);
                        }
                    }

                    await BetweenAsync(n);
                    continue;
                }

                if (kind >= TopUpShare + RefundShare && kind < TopUpShare + RefundShare + TransferShare + CashOutShare)
                {
                    // Value the holder takes off the card: to another card of the run, or to a bank account.
                    var isTransfer = kind < TopUpShare + RefundShare + TransferShare;
                    var payee = cards[(cards.IndexOf(card) + random.Next(1, cards.Count)) % cards.Count];
                    var amount = new Money((random.Next(1, 31) * 100) + (random.Next(2) * 50), Currency.Eur);
                    var iban = s_ibans[random.Next(s_ibans.Length)];
                    var (request, completion) = isTransfer ? (Call.Transfer, Call.TransferCompletion) : (Call.CashOut, Call.CashOutCompletion);
                    var decreasePlan = new FaultPlan(await WithKillAsync(n, DrawDecreaseFaults(random, slotLength, request, completion), request, completion));
                    var decreaseFlow = new DecreaseFlow(new OperatorApi(system.WalletOperator), card, new FaultyPrompt(decreasePlan));
                    var (decrease, _) = isTransfer
                        ? await RunFlowAsync(system, decreasePlan, $"transfer {n} ({card.CardId.Masked} → {payee.CardId.Masked}, {amount})",
                            () => decreaseFlow.TransferAsync(amount, payee.CardId.Digits, CancellationToken.None))
                        : await RunFlowAsync(system, decreasePlan, $"cash-out {n} ({card.CardId.Masked}, {amount} to {iban[..2]})",
                            () => decreaseFlow.CashOutAsync(amount, iban, "Randomized Run", CancellationToken.None));
                    if (decrease is DecreaseResult done)
                    {
                        decreased.Add((n, done));
                    }
                    else if (decreasePlan.FiredFaults is { Count: > 0 } fired && fired.All(f => f.IsCard && f.Instruction == PurseInstruction.GetData))
                    {
                        // The GET DATA comes after the operator took the card's answer: the DEBIT is done, and the wallet must say so.
                        Problem($"{(isTransfer ? "transfer" : "cash-out")} {n} lost the card only at the balance read after its DEBIT was reported, yet the wallet did not report it done");
                    }

                    // The payee is owed a card credit once the DEBIT is judged; the payer may have left one open.
                    CardSlot[] parties = isTransfer ? [card, payee] : [card];
                    foreach (var party in parties)
                    {
                        if (!owed.Contains(party))
                        {
                            owed.Add(party);
                        }
                    }

                    await BetweenAsync(n);
                    continue;
                }

                if (kind < TopUpShare)
                {
                    // A top-up in the purchase's place: the person's credit card, an amount, and faults of its own.
                    var number = Pick(random, (Approves, 16), (FailsOnce, 2), (Declines, 1), (TimesOut, 1));
                    var amount = new Money(random.Next(5, 41) * 100, Currency.Eur);
                    var topUpPlan = new FaultPlan(await WithKillAsync(n, DrawTopUpFaults(random, slotLength), Call.TopUp, Call.TopUpCompletion));
                    var topUpFlow = new TopUpFlow(new OperatorApi(system.WalletOperator), card, new FaultyPrompt(topUpPlan)) { RetryDelay = TimeSpan.FromMilliseconds(50) };
                    var (topUp, _) = await RunFlowAsync(system, topUpPlan, $"top-up {n} ({card.CardId.Masked}, {amount}, card ending {number[^4..]})",
                        () => topUpFlow.RunAsync(amount, new CardData(number, expiry, "1234"), CancellationToken.None));
                    if (topUp is TopUpResult done)
                    {
                        toppedUp.Add((n, done));
                    }

                    await BetweenAsync(n);
                    continue;
                }

                var (sku, storeId) = s_items[random.Next(s_items.Length)];
                var quantity = random.Next(10) < 8 ? 1 : 2;
                var profile = random.Next(2) == 0 ? SettlementProfile.Signed : SettlementProfile.Lean;
                var plan = new FaultPlan(await WithKillAsync(n, DrawFaults(random, slotLength, forSync: false), Call.Rt1, Call.Rt2));
                var retryDelay = TimeSpan.FromMilliseconds(random.Next(4) == 0 ? 600 : 50);
                var prompt = new FaultyPrompt(plan);
                var flow = new PurchaseFlow(system.WalletStore, system.WalletOperator, card, prompt) { CompletionRetryDelay = retryDelay };
                var (result, outcome) = await RunFlowAsync(system, plan, $"purchase {n} ({card.CardId.Masked}, {quantity}× {sku}, {profile})",
                    () => flow.RunAsync(new PurchaseRequest(sku, quantity, storeId, profile)));
                if (result is PurchaseResult purchase)
                {
                    paid.Add((n, purchase));
                    owed.Remove(card);
                }
                else if (!owed.Contains(card) && (outcome.Contains("card debited", StringComparison.Ordinal) || outcome.StartsWith("card.removed", StringComparison.Ordinal)
                    || outcome.StartsWith("wallet died", StringComparison.Ordinal) || outcome.StartsWith("UNEXPECTED", StringComparison.Ordinal)))
                {
                    // The card may have paid a settlement that does not complete: once it expires, the value is owed back to it.
                    owed.Add(card);
                }

                await BetweenAsync(n);
            }

            async Task BetweenAsync(int n)
            {
                if (random.NextDouble() < WaitBetweenShare)
                {
                    waits++;
                    await Task.Delay(system.StallTime);
                    for (var i = 0; i < 2 && owed.Count > 0; i++)
                    {
                        if (random.Next(10) < 7)
                        {
                            await SyncBetweenAsync(owed[random.Next(owed.Count)], $"after purchase {n} and a wait");
                        }
                    }
                }

                if (random.NextDouble() < SyncBetweenShare)
                {
                    await SyncBetweenAsync(owed.Count > 0 && random.Next(10) < 7 ? owed[random.Next(owed.Count)] : cards[random.Next(cards.Count)], $"after purchase {n}");
                }
            }

            var run = clock.Elapsed;

            // Recovery without faults: the registry healed, one more restart, the sweeper expires what is overdue, every card syncs.
            system.Plan = FaultPlan.None;
            if (registryFaults is not null)
            {
                await registryFaults.HealedAsync();
                await system.RegistryReadyAsync();
            }

            await system.RestartOperatorAsync();
            await Task.Delay(system.StallTime);
            await WaitForSettlementsAsync(system, s => s.State != "authorized", "the sweeper to expire every authorized settlement");

            // The store owner asks again for every refund the operator never answered: the same id is sent again.
            foreach (var waiting in (await system.StoreRefundsAsync()).Where(r => r.State == StoredRefund.Requested))
            {
                var again = await system.RefundAsync(waiting.OrderNo, new Money(waiting.AmountMinor, Currency.Eur), waiting.Reason!);
                Check(again.Value?.RefundId.ToString() == waiting.RefundId,
                    $"refund {waiting.RefundId} of order {waiting.OrderNo}, asked again without faults, ended {again.Value?.RefundId.ToString() ?? again.Refusal!.Code}");
            }

            var credits = 0;
            for (var round = 1; ; round++)
            {
                var returned = 0;
                foreach (var card in cards)
                {
                    try
                    {
                        var synced = await new CardSyncFlow(new OperatorApi(system.WalletOperator), card, new AutoPrompt()).RunAsync(CancellationToken.None);
                        returned += synced.Credits.Count;
                    }
                    catch (Exception e)
                    {
                        Problem($"the final sync of card {card.CardId.Masked} (round {round}) failed: {e.GetType().Name} {(e as WalletException)?.Code}: {e.Message}");
                    }
                }

                credits += returned;

                // A sync may also resolve a transfer, owing its payee a credit that an earlier card's sync of this round did not see.
                if (returned == 0 && await OpenCreditsAndDebitsAsync(system) == 0)
                {
                    break;
                }

                if (round == SyncRoundsMax)
                {
                    Problem($"after {SyncRoundsMax} rounds of syncing every card, CREDITs still come back");
                    break;
                }
            }

            await WaitForSettlementsAsync(system, s => s.State is "completed" or "voided" or "reversed" && s.StoreToldAt is not null,
                "every settlement to be final (completed, voided or reversed) and its store told");
            await WaitForTopUpsAsync(system);
            var recovery = clock.Elapsed - run;

            // The invariant.
            var settlements = await SettlementsAsync(system);
            var topUps = await TopUpsAsync(system);
            var cardCredits = await CardCreditsAsync(system);
            var decreases = await DecreasesAsync(system);
            await CheckCardsAsync(system, cards, settlements, topUps, cardCredits, decreases);
            await CheckLedgerAsync(system, cards, topUps);
            var operatorRefunds = await CheckRefundsAsync(system, settlements, cardCredits);
            await CheckDecreasesAsync(system, cardCredits, decreases);
            var refundsById = operatorRefunds.ToDictionary(r => r.RefundId, StringComparer.Ordinal);
            foreach (var (n, refund) in refunded)
            {
                var found = refundsById.GetValueOrDefault(refund.RefundId.ToString());
                Check(found is not null && found.AmountMinor == refund.Amount.MinorUnits,
                    $"refund {n} was reported done (refund {refund.RefundId}, {refund.Amount}) but the operator holds {(found is null ? "no such refund" : $"{found.AmountMinor}")}");
            }

            var decreasesById = decreases.ToDictionary(d => d.Id, StringComparer.Ordinal);
            foreach (var (n, result) in decreased)
            {
                var state = decreasesById.TryGetValue(result.Id.ToString(), out var d) ? d.State : "absent";
                Check(state == "debited", $"{result.Purpose} {n} was reported done ({result.Id}) but it is {state}");
            }

            await CheckAuthorizerAsync(system, topUps);
            var topUpsById = topUps.ToDictionary(t => t.TopUpId, StringComparer.Ordinal);
            foreach (var (n, result) in toppedUp)
            {
                var state = topUpsById.TryGetValue(result.TopUpId.ToString(), out var t) ? t.State : "absent";
                Check(state == "captured", $"top-up {n} was reported done (top-up {result.TopUpId}) but it is {state}");
            }

            var orders = await CheckOrdersAsync(system, settlements);
            var byId = settlements.ToDictionary(s => s.SettlementId, StringComparer.Ordinal);
            foreach (var (n, result) in paid)
            {
                var state = byId.TryGetValue(result.SettlementId.ToString(), out var s) ? s.State : "absent";
                Check(state == "completed", $"purchase {n} was reported paid (order {result.OrderNo}, settlement {result.SettlementId}) but its settlement is {state}");
            }

            var errors = log.Errors.ToArray();
            var summary = new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"seed {_seed}: {purchases} operations ({paid.Count} purchases paid), {syncs} syncs between them, {waits} waits past the deadline, {system.Restarts} operator restarts; recovery: {credits} CREDITs taken")
                .AppendLine(CultureInfo.InvariantCulture, $"time: set-up {setUp.TotalSeconds:F1} s, run {(run - setUp).TotalSeconds:F1} s, recovery {recovery.TotalSeconds:F1} s, checks {(clock.Elapsed - run - recovery).TotalSeconds:F1} s, total {clock.Elapsed.TotalSeconds:F1} s")
                .AppendLine("faults (fired/planned):")
                .AppendJoin(Environment.NewLine, _faults.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"  {f.Key}: {f.Value.Fired}/{f.Value.Planned}"))
                .AppendLine()
                .AppendLine("outcomes:")
                .AppendJoin(Environment.NewLine, _outcomes.OrderByDescending(o => o.Value).ThenBy(o => o.Key, StringComparer.Ordinal).Select(o => $"  {o.Key}: {o.Value}"))
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"settlements: {string.Join(", ", settlements.GroupBy(s => s.State).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}; "
                    + $"resolved by {string.Join(", ", settlements.GroupBy(s => s.ResolvedBy ?? "-").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"top-ups: {toppedUp.Count} reported done; {string.Join(", ", topUps.GroupBy(t => t.State).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"refunds: {refunded.Count} reported done; at the operator {operatorRefunds.Count}; card credits: {string.Join(", ", cardCredits.GroupBy(c => $"{c.Purpose} {c.State}").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"transfers and cash-outs: {decreased.Count} reported done; {string.Join(", ", decreases.GroupBy(d => $"{d.Kind} {d.State}").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"store orders: {string.Join(", ", orders.GroupBy(o => o).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"server warnings: {string.Join(", ", log.Warnings.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => $"{w.Key} {w.Value}"))}")
                .AppendLine(CultureInfo.InvariantCulture, $"server errors: {errors.Length}{string.Concat(errors.Take(10).Select(e => Environment.NewLine + "  " + e))}")
                .Append(registryFaults?.Report() ?? "");
            output.WriteLine(summary.ToString());
            Assert.True(_problems.Count == 0, $"seed {_seed} (OPENPURSE_FAULT_SEED={_seed}): {_problems.Count} problem(s):{Environment.NewLine}{string.Join(Environment.NewLine, _problems.Take(40))}");
        }
        finally
        {
            system.Plan = FaultPlan.None;
            foreach (var card in cards)
            {
                card.Dispose();
            }
        }
    }

    /// <summary>One purchase, top-up or sync under its plan: the exceptions a wallet may end with are outcomes; any other is a problem.</summary>
    private async Task<(object? Result, string Outcome)> RunFlowAsync<T>(InProcessSystem system, FaultPlan plan, string what, Func<Task<T>> flow)
    {
        foreach (var fault in plan.Faults)
        {
            Count(fault.Family, planned: 1, fired: 0);
        }

        system.Plan = plan;
        string outcome;
        object? result = null;
        try
        {
            var value = await flow();
            result = value;
            outcome = value switch
            {
                PurchaseResult => "paid",
                TopUpResult => "topped up",
                DecreaseResult { Purpose: ValueDecreasePurposes.Transfer } => "transferred",
                DecreaseResult => "cashed out",
                RefundView => "refunded",
                Refusal refusal => refusal.Code,
                CardSyncResult { Returned: not null } => "synced, credit taken",
                _ => "synced",
            };
        }
        catch (WalletException e)
        {
            outcome = $"{e.Code}{(e.CardDebited ? " (card debited)" : "")}";
        }
        catch (WalletGaveUpException)
        {
            outcome = "wallet died";
        }
        catch (Exception e)
        {
            outcome = $"UNEXPECTED {e.GetType().Name}";
            var where = string.Join(Environment.NewLine, (e.StackTrace ?? "").Split(Environment.NewLine).Where(l => l.Contains(" in /", StringComparison.Ordinal)).Take(3));
            Problem($"{what} with faults [{string.Join(", ", plan.Faults)}] threw {e.GetType().FullName}, not a WalletException: {e.Message.Trim()}{Environment.NewLine}{where}");
        }
        finally
        {
            system.Plan = FaultPlan.None;
        }

        foreach (var fault in plan.FiredFaults)
        {
            Count(fault.Family, planned: 0, fired: 1);
        }

        Outcome(what[..what.IndexOf(' ', StringComparison.Ordinal)], outcome);
        output.WriteLine($"{what}: [{string.Join(", ", plan.Faults.Select(f => f.Fired ? f.ToString() : $"({f})"))}] → {outcome}");
        return (result, outcome);
    }

    private void Outcome(string kind, string outcome) => _outcomes[$"{kind}: {outcome}"] = _outcomes.GetValueOrDefault($"{kind}: {outcome}") + 1;

    private void Count(string family, int planned, int fired)
    {
        var (p, f) = _faults.GetValueOrDefault(family);
        _faults[family] = (p + planned, f + fired);
    }

    /// <summary>
    /// One refund by the store owner of an order the run paid: mostly of an amount up to what is
    /// left, under a fault of the store's call to the operator, sometimes asked again at once (the
    /// same refund, sent again under its id) or sent again as it was signed (the operator answers
    /// its notice again, writing nothing); sometimes one that would pass what is left, to the store
    /// or straight to the operator, which must be refused and write nothing.
    /// </summary>
    /// <returns>The refund the store reported done, or null.</returns>
    private async Task<RefundView?> RefundOrderAsync(InProcessSystem system, Random random, int n, PurchaseResult purchase)
    {
        var (order, refunds) = await system.StoreRefundsOfAsync(purchase.OrderNo);
        if (order is null)
        {
            Problem($"refund {n}: order {purchase.OrderNo}, reported paid, is not at the store");
            return null;
        }

        var left = order.Amount.MinorUnits - refunds.Where(r => r.Counts).Sum(r => r.Amount.MinorUnits);
        var reason = $"operation {n}";
        var what = $"refund {n} (order {purchase.OrderNo}, {new Money(left, Currency.Eur)} of {order.Amount} left";
        if (left == 0 || random.Next(8) == 0)
        {
            await RefundTooMuchAsync(system, random, n, purchase, order, left, reason);
            return null;
        }

        var amount = new Money(random.Next(3) == 0 ? left : random.Next(1, checked((int)left) + 1), Currency.Eur);
        var plan = new FaultPlan(await WithKillAsync(n, DrawRefundFaults(random), Call.Refund));
        var (result, outcome) = await RunFlowAsync(system, plan, $"{what}, {amount})", async () =>
        {
            var refunded = await system.RefundAsync(purchase.OrderNo, amount, reason);
            return refunded.Value is { } view ? view : (object)refunded.Refusal!;
        });
        if (result is Refusal { Code: "refund.operator_unreachable" } && random.Next(2) == 0)
        {
            // The store owner asks again at once for the same amount and reason: the same refund goes again.
            // Once the registry answers: a failover may be under way, and the checks here and below want exact answers.
            await system.RegistryReadyAsync();
            var waiting = (await system.StoreRefundsOfAsync(purchase.OrderNo)).Refunds.Single(r => r.Reason == reason);
            var again = await system.RefundAsync(purchase.OrderNo, amount, reason);
            Check(waiting.State == StoredRefund.Requested && again.Value?.RefundId == waiting.RefundId,
                $"refund {n} ({outcome}) was {waiting.State} at the store as {waiting.RefundId}; asked again it ended {again.Value?.RefundId.ToString() ?? again.Refusal!.Code}");
            Outcome("refund", "asked again");
            result = again.Value;
        }

        if (result is RefundView done && random.Next(4) == 0)
        {
            // The same signed request again, as a store that lost the answer sends it: the same notice, nothing written.
            await system.RegistryReadyAsync();
            await using var connection = await system.Database.OpenAsync();
            var (request, notice) = await connection.QuerySingleAsync<(string, string)>(
                "SELECT request, notice FROM refunds WHERE refund_id = @id", new { id = done.RefundId.ToString() });
            var before = await RowCountsAsync(system);
            var (status, answered, code) = await system.SubmitRefundAsync(request);
            Check(status == 200 && answered == notice && await RowCountsAsync(system) == before,
                $"refund {n} ({done.RefundId}) sent again as signed: answered {status} {code}, {(answered == notice ? "its notice" : "another notice")}, rows {before} → {await RowCountsAsync(system)}");
            Outcome("refund", "sent again, same notice");
        }

        return result as RefundView;
    }

    // A refund that would pass what is left: refused by the store's own check, or — sent straight to
    // the operator, signed by the store — by the operator's; either way nothing is written.
    private async Task RefundTooMuchAsync(InProcessSystem system, Random random, int n, PurchaseResult purchase, OrderRecord order, long left, string reason)
    {
        await system.RegistryReadyAsync();
        var storeBefore = (await system.StoreRefundsAsync()).Count;
        var before = await RowCountsAsync(system);
        string outcome;
        if (random.Next(2) == 0)
        {
            var amount = new Money(left + random.Next(1, 501), Currency.Eur);
            var refused = await system.RefundAsync(purchase.OrderNo, amount, reason);
            outcome = refused.Refusal?.Code ?? "refunded";
            Check(outcome == "refund.exceeds_paid", $"refund {n} of {amount}, {new Money(left, Currency.Eur)} left of order {purchase.OrderNo}, ended {outcome} at the store");
        }
        else
        {
            long operatorRefunded;
            await using (var connection = await system.Database.OpenAsync())
            {
                operatorRefunded = await connection.ExecuteScalarAsync<long>(
                    "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM refunds WHERE settlement_id = @id", new { id = purchase.SettlementId.ToString() });
            }

            var amount = new Money(order.Amount.MinorUnits - operatorRefunded + random.Next(1, 501), Currency.Eur);
            var request = new RefundRequest(Guid.CreateVersion7(), purchase.SettlementId, order.StoreId, amount, reason, DateTimeOffset.UtcNow);
            var (status, _, code) = await system.SubmitRefundAsync(system.SignRefund(request));
            outcome = $"straight to the operator: {code ?? status.ToString(CultureInfo.InvariantCulture)}";
            Check(code == "refund.exceeds_paid", $"refund {n} of {amount} sent straight to the operator, {order.Amount.MinorUnits - operatorRefunded} left of settlement {purchase.SettlementId}, answered {status} {code}");
        }

        Check((await system.StoreRefundsAsync()).Count == storeBefore && await RowCountsAsync(system) == before,
            $"refund {n} was refused, yet something was written: the store's refunds {storeBefore} → {(await system.StoreRefundsAsync()).Count}, the operator's rows {before} → {await RowCountsAsync(system)}");
        Outcome("refund", $"too much, {outcome}");
        output.WriteLine($"refund {n} (order {purchase.OrderNo}, too much): {outcome}");
    }

    // The operation's faults, and the registry's primary killed on one of its calls when a kill is due.
    private async Task<List<PlannedFault>> WithKillAsync(int n, List<PlannedFault> faults, params Call[] calls)
    {
        if (_registryFaults is not null && await _registryFaults.DrawAsync(n, calls) is { } kill)
        {
            faults.Add(kill);
        }

        return faults;
    }

    // The operator's refunds, card credits and journal lines: what a refusal must leave as it was.
    private static async Task<(long Refunds, long Credits, long Lines)> RowCountsAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return await connection.QuerySingleAsync<(long, long, long)>(
            "SELECT (SELECT COUNT(*) FROM refunds), (SELECT COUNT(*) FROM card_credits), (SELECT COUNT(*) FROM journal)");
    }

    // What the final syncs have yet to resolve: card credits not credited, transfers and cash-outs still debiting.
    private static async Task<long> OpenCreditsAndDebitsAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return await connection.ExecuteScalarAsync<long>(
            """
            SELECT (SELECT COUNT(*) FROM card_credits WHERE state <> 'credited')
                 + (SELECT COUNT(*) FROM transfers WHERE state = 'debiting')
                 + (SELECT COUNT(*) FROM cashouts WHERE state = 'debiting')
            """);
    }

    // The schedule of one refund: none, or a fault of the store's call to the operator.
    private static List<PlannedFault> DrawRefundFaults(Random random) => random.Next(10) switch
    {
        < 3 => [],
        < 7 => [Network(random, Call.Refund)],
        _ => [new PlannedFault(random.Next(2) == 0 ? FaultKind.RestartBefore : FaultKind.RestartAfter) { Call = Call.Refund }],
    };

    // The schedule of one transfer or cash-out: none, one fault, or two.
    private static List<PlannedFault> DrawDecreaseFaults(Random random, int slotLength, Call request, Call completion)
    {
        var roll = random.NextDouble();
        var count = roll < FaultFreeShare ? 0 : roll < 1 - TwoFaultsShare ? 1 : 2;
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(100) switch
        {
            < 28 => Network(random, Pick(random, (request, 4), (completion, 4), (Call.OperatorKeys, 1))),
            < 40 => new PlannedFault(random.Next(2) == 0 ? FaultKind.RestartBefore : FaultKind.RestartAfter) { Call = Pick(random, (request, 1), (completion, 1)) },
            < 58 => Pull(random, s_decreaseCommands[random.Next(s_decreaseCommands.Length)]),
            < 74 => Tear(random, PurseInstruction.Debit, slotLength),
            < 92 => new PlannedFault(FaultKind.GiveUp) { Step = random.Next(1, 10) },
            _ => new PlannedFault(FaultKind.Decline),
        })];
    }

    // The schedule of one purchase (or sync): none, one fault, or two.
    private static List<PlannedFault> DrawFaults(Random random, int slotLength, bool forSync)
    {
        var roll = random.NextDouble();
        var count = forSync ? 1 : roll < FaultFreeShare ? 0 : roll < 1 - TwoFaultsShare ? 1 : 2;
        var faults = new List<PlannedFault>(count);
        for (var i = 0; i < count; i++)
        {
            var fault = forSync ? DrawSyncFault(random, slotLength) : DrawPurchaseFault(random, slotLength);
            faults.Add(fault);
            if (fault.Call == Call.StoreCompletion)
            {
                // The wallet brings the ACN to the store only when the operator brought back no receipt.
                faults.Add(new PlannedFault(FaultKind.DropRequest) { Call = Call.AcnDelivery });
            }
        }

        return faults;
    }

    private static PlannedFault DrawPurchaseFault(Random random, int slotLength)
    {
        var roll = random.Next(100);
        return roll switch
        {
            < 24 => Network(random, Pick(random, (Call.Rt1, 30), (Call.Rt2, 35), (Call.OperatorKeys, 12), (Call.StoreKeys, 12), (Call.Sync, 6), (Call.CreditCompletion, 5))),
            < 34 => Network(random, Pick(random, (Call.Catalog, 1), (Call.Estimate, 1), (Call.Order, 2), (Call.StoreCompletion, 1), (Call.Download, 2))),
            < 43 => new PlannedFault(random.Next(2) == 0 ? FaultKind.RestartBefore : FaultKind.RestartAfter)
            {
                Call = Pick(random, (Call.Rt1, 3), (Call.Rt2, 3), (Call.OperatorKeys, 1), (Call.Order, 1), (Call.Download, 1), (Call.Sync, 1)),
            },
            < 49 => new PlannedFault(FaultKind.Stall) { Call = Pick(random, (Call.Rt2, 6), (Call.CreditCompletion, 1)) },
            < 62 => Pull(random, s_purchaseCommands[random.Next(s_purchaseCommands.Length)]),
            < 72 => Tear(random, random.Next(5) == 0 ? PurseInstruction.Credit : PurseInstruction.Debit, slotLength),
            // Steps 11–14 are around the DEBIT: the card paying, and what the wallet does right after.
            < 80 => new PlannedFault(FaultKind.GiveUp) { Step = random.Next(5) < 2 ? random.Next(11, 15) : random.Next(1, 20) },
            < 83 => new PlannedFault(FaultKind.Decline),
            _ => new PlannedFault(random.Next(2) == 0 ? FaultKind.DropRequest : FaultKind.LoseAnswer) { Call = random.Next(5) == 0 ? Call.VoidDelivery : Call.AcnDelivery },
        };
    }

    // The schedule of one top-up: none, one fault, or two.
    private static List<PlannedFault> DrawTopUpFaults(Random random, int slotLength)
    {
        var roll = random.NextDouble();
        var count = roll < FaultFreeShare ? 0 : roll < 1 - TwoFaultsShare ? 1 : 2;
        return [.. Enumerable.Range(0, count).Select(_ => DrawTopUpFault(random, slotLength))];
    }

    private static PlannedFault DrawTopUpFault(Random random, int slotLength)
    {
        var roll = random.Next(100);
        return roll switch
        {
            < 28 => Network(random, Pick(random, (Call.TopUp, 4), (Call.TopUpCompletion, 4), (Call.AuthorizerKeys, 1), (Call.OperatorKeys, 1))),
            < 40 => new PlannedFault(random.Next(2) == 0 ? FaultKind.RestartBefore : FaultKind.RestartAfter) { Call = Pick(random, (Call.TopUp, 1), (Call.TopUpCompletion, 1)) },
            // The operator's calls to the authorizer (a void comes when the person declines: the sync that follows voids).
            < 58 => Network(random, Pick(random, (Call.Authorize, 3), (Call.Capture, 3), (Call.VoidAuthorization, 1))),
            < 70 => Pull(random, s_topUpCommands[random.Next(s_topUpCommands.Length)]),
            < 80 => Tear(random, PurseInstruction.Credit, slotLength),
            < 92 => new PlannedFault(FaultKind.GiveUp) { Step = random.Next(1, 12) },
            _ => new PlannedFault(FaultKind.Decline),
        };
    }

    private static PlannedFault DrawSyncFault(Random random, int slotLength)
    {
        var roll = random.Next(100);
        return roll switch
        {
            < 30 => Network(random, Pick(random, (Call.Sync, 3), (Call.CreditCompletion, 3), (Call.OperatorKeys, 1))),
            < 42 => new PlannedFault(random.Next(2) == 0 ? FaultKind.RestartBefore : FaultKind.RestartAfter) { Call = Pick(random, (Call.Sync, 1), (Call.CreditCompletion, 1)) },
            < 47 => new PlannedFault(FaultKind.Stall) { Call = Call.CreditCompletion },
            < 70 => Pull(random, s_syncCommands[random.Next(s_syncCommands.Length)]),
            < 88 => Tear(random, PurseInstruction.Credit, slotLength),
            _ => new PlannedFault(FaultKind.GiveUp) { Step = random.Next(1, 10) },
        };
    }

    private static PlannedFault Network(Random random, Call call) => new(random.Next(2) == 0 ? FaultKind.DropRequest : FaultKind.LoseAnswer)
    {
        Call = call,
        // Round trip 2 is sent up to three times: a fault on a retry, or on each of them with two faults.
        Occurrence = call == Call.Rt2 ? Pick(random, (1, 6), (2, 3), (3, 1)) : 1,
    };

    private static PlannedFault Pull(Random random, byte instruction) =>
        new(random.Next(2) == 0 ? FaultKind.PullBefore : FaultKind.PullAfter) { Instruction = instruction };

    private static PlannedFault Tear(Random random, byte instruction, int slotLength) =>
        new(FaultKind.Tear) { Instruction = instruction, TearAt = random.Next(slotLength + 1) };

    private static T Pick<T>(Random random, params (T Value, int Weight)[] choices)
    {
        var roll = random.Next(choices.Sum(c => c.Weight));
        foreach (var (value, weight) in choices)
        {
            if ((roll -= weight) < 0)
            {
                return value;
            }
        }

        throw new UnreachableException();
    }

    private async Task WaitForSettlementsAsync(InProcessSystem system, Func<SettlementRecord, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + s_settleWaitMax;
        while (true)
        {
            var settlements = await SettlementsAsync(system);
            var waiting = settlements.Where(s => !done(s)).ToList();
            if (waiting.Count == 0)
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Problem($"waited {s_settleWaitMax.TotalSeconds} s in vain for {what}; {waiting.Count} not: "
                    + string.Join("; ", waiting.Take(10).Select(s => $"{s.SettlementId} {s.State} by {s.ResolvedBy ?? "-"}, card {s.CardId[^4..]}, told {s.StoreToldAt ?? "no"}")));
                return;
            }

            await Task.Delay(100);
        }
    }

    // Until the sweeper has captured or voided every top-up the final syncs resolved.
    private async Task WaitForTopUpsAsync(InProcessSystem system)
    {
        var deadline = DateTime.UtcNow + s_settleWaitMax;
        while (true)
        {
            var waiting = (await TopUpsAsync(system)).Where(t => t.State is not ("captured" or "voided" or "declined" or "authorizing")).ToList();
            if (waiting.Count == 0)
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Problem($"waited {s_settleWaitMax.TotalSeconds} s in vain for every top-up to be captured or voided; {waiting.Count} not: "
                    + string.Join("; ", waiting.Take(10).Select(t => $"{t.TopUpId} {t.State}, card {t.CardId[^4..]}")));
                return;
            }

            await Task.Delay(100);
        }
    }

    // The three parties agree: the authorizer captured exactly what the cards took (the operator's
    // posted top-ups), voided or never captured the rest, and made one authorization per top-up at most.
    private async Task CheckAuthorizerAsync(InProcessSystem system, IReadOnlyList<TopUpRecord> topUps)
    {
        var authorizations = await system.AuthorizationsAsync();
        var byId = topUps.ToDictionary(t => t.TopUpId, StringComparer.Ordinal);
        foreach (var group in authorizations.GroupBy(a => a.Reference, StringComparer.Ordinal))
        {
            Check(group.Count() == 1, $"top-up {group.Key} has {group.Count()} authorizations at the authorizer");
            Check(byId.ContainsKey(group.Key), $"the authorizer holds an authorization for {group.Key}, a top-up the operator never recorded");
        }

        foreach (var topUp in topUps)
        {
            var authorization = authorizations.FirstOrDefault(a => a.Reference == topUp.TopUpId);
            var seen = authorization is null ? "no authorization" : authorization.CapturedAt is not null ? $"captured {authorization.CapturedMinor}" : authorization.VoidedAt is not null ? "voided" : authorization.Status;
            var what = $"top-up {topUp.TopUpId} of card {topUp.CardId[^4..]} is {topUp.State} at the operator, {seen} at the authorizer";
            switch (topUp.State)
            {
                case "captured":
                    Check(authorization is { CapturedAt: not null, VoidedAt: null } && authorization.CapturedMinor == topUp.AmountMinor, what);
                    break;
                case "voided":
                    Check(authorization is null || authorization is { VoidedAt: not null, CapturedAt: null }, what);
                    break;
                default:
                    Check(authorization is null || authorization.CapturedAt is null, what);
                    break;
            }
        }
    }

    private static async Task<IReadOnlyList<TopUpRecord>> TopUpsAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return [.. await connection.QueryAsync<TopUpRecord>(
            "SELECT topup_id AS TopUpId, card_id AS CardId, state AS State, amount_minor AS AmountMinor FROM topups ORDER BY created_at")];
    }

    private async Task CheckCardsAsync(InProcessSystem system, List<CardSlot> cards, IReadOnlyList<SettlementRecord> settlements, IReadOnlyList<TopUpRecord> topUps,
        IReadOnlyList<CardCreditRecord> cardCredits, IReadOnlyList<DecreaseRecord> decreases)
    {
        await using var connection = await system.Database.OpenAsync();
        var accounts = (await connection.QueryAsync<(string Account, long Balance)>(
            "SELECT account, CAST(SUM(amount_minor) AS BIGINT) FROM journal WHERE currency = 'EUR' GROUP BY account")).ToDictionary(a => a.Account, a => a.Balance, StringComparer.Ordinal);
        var shadows = (await connection.QueryAsync<(string CardId, long Balance)>(
            "SELECT card_id, balance_minor FROM card_purses WHERE currency = 'EUR'")).ToDictionary(s => s.CardId, s => s.Balance, StringComparer.Ordinal);
        var counters = (await connection.QueryAsync<(string CardId, long Counter)>(
            "SELECT card_id, counter FROM cards")).ToDictionary(c => c.CardId, c => c.Counter, StringComparer.Ordinal);
        foreach (var card in cards)
        {
            var status = ReadCard(card);
            var chip = status.BalanceOf(Currency.Eur)?.MinorUnits ?? 0;
            var digits = card.CardId.Digits;
            var account = accounts.GetValueOrDefault("card:" + digits);
            var shadow = shadows.GetValueOrDefault(digits);
            var spent = settlements.Where(s => s.CardId == digits && s.State == "completed").Sum(s => s.AmountMinor);
            var added = topUps.Where(t => t.CardId == digits && t.State is "credited" or "captured").Sum(t => t.AmountMinor);
            var credited = cardCredits.Where(c => c.CardId == digits && c.State == "credited").Sum(c => c.AmountMinor);
            var given = decreases.Where(d => d.CardId == digits && d.State is "debited" or "paid" or "returned").Sum(d => d.AmountMinor);
            var expected = card.Load.MinorUnits + added + credited - spent - given;
            var name = $"card {card.CardId.Masked}";
            Check(chip == account, $"{name}: the chip holds {chip} but its journal account {account}");
            Check(chip == shadow, $"{name}: the chip holds {chip} but the operator's shadow (card_purses) {shadow}");
            Check(chip == expected,
                $"{name}: the chip holds {chip}, but its load {card.Load.MinorUnits}, top-ups {added} and card credits {credited} less its completed settlements {spent} and transfers and cash-outs {given} is {expected}");
            Check(status.Counter == counters.GetValueOrDefault(digits),
                $"{name}: the chip's counter is {status.Counter}, the operator last saw {counters.GetValueOrDefault(digits)}: a move of the card's is not accounted for");
        }
    }

    private async Task CheckLedgerAsync(InProcessSystem system, List<CardSlot> cards, IReadOnlyList<TopUpRecord> topUps)
    {
        var report = await system.ReconcileAsync();
        Check(report.IsClean, $"the ledger does not reconcile:{Environment.NewLine}{report.ToText()}");
        var eur = report.Currencies.SingleOrDefault(c => c.Currency == "EUR");
        if (eur is null)
        {
            Problem("the ledger has no EUR totals");
            return;
        }

        var chips = cards.Sum(c => ReadCard(c).BalanceOf(Currency.Eur)?.MinorUnits ?? 0);
        var held = chips + eur.Stores + eur.Reversals + eur.Pending + eur.Payouts;
        Check(held == eur.Issued,
            $"Σ chips {chips} + Σ stores {eur.Stores} + reversals {eur.Reversals} + pending {eur.Pending} + payouts {eur.Payouts} = {held}, but {eur.Issued} were issued");
        var loaded = cards.Sum(c => c.Load.MinorUnits) + topUps.Where(t => t.State is "credited" or "captured").Sum(t => t.AmountMinor);
        Check(eur.Issued == loaded, $"issued {eur.Issued}, but the cards were loaded and topped up with {loaded}");
        Check(eur.Reversals == 0, $"the reversals account holds {eur.Reversals} after every card synced: value is still owed back to a card");
        Check(eur.Pending == 0, $"the pending account holds {eur.Pending} after every card synced: a card credit was not taken");
    }

    /// <returns>The state of every order the store holds.</returns>
    private async Task<List<string>> CheckOrdersAsync(InProcessSystem system, IReadOnlyList<SettlementRecord> settlements)
    {
        var seen = new List<string>();
        var byOrder = settlements.GroupBy(s => s.OrderNo, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var orders = await system.StoreOrdersAsync();
        foreach (var orderNo in orders)
        {
            var state = await system.OrderStateAsync(orderNo);
            seen.Add(state);
            var of = byOrder.GetValueOrDefault(orderNo) ?? [];
            var states = of.Count == 0 ? "no settlement" : string.Join(", ", of.Select(s => $"{s.SettlementId} {s.State}"));
            var completed = of.Any(s => s.State == "completed");
            var notPaid = of.Any(s => s.State is "voided" or "reversed");
            Check((state == "paid") == completed, $"order {orderNo} is {state}, its settlements: {states}");
            Check((state == "cancelled") == (notPaid && !completed), $"order {orderNo} is {state}, its settlements: {states}");
            Check(state != "billed" || of.Count == 0, $"order {orderNo} is still billed, though its settlement is final and its store was told: {states}");
        }

        foreach (var settlement in settlements.Where(s => !orders.Contains(s.OrderNo, StringComparer.Ordinal)))
        {
            Problem($"settlement {settlement.SettlementId} ({settlement.State}) is for order {settlement.OrderNo}, which the store does not hold");
        }

        return seen;
    }

    /// <returns>The refunds the operator holds.</returns>
    private async Task<IReadOnlyList<RefundRecord>> CheckRefundsAsync(InProcessSystem system, IReadOnlyList<SettlementRecord> settlements, IReadOnlyList<CardCreditRecord> cardCredits)
    {
        IReadOnlyList<RefundRecord> refunds;
        await using (var connection = await system.Database.OpenAsync())
        {
            refunds = [.. await connection.QueryAsync<RefundRecord>(
                "SELECT refund_id AS RefundId, settlement_id AS SettlementId, card_id AS CardId, amount_minor AS AmountMinor, state AS State FROM refunds ORDER BY created_at")];
        }

        var byId = refunds.ToDictionary(r => r.RefundId, StringComparer.Ordinal);
        var atStore = await system.StoreRefundsAsync();
        foreach (var refund in atStore)
        {
            var found = byId.GetValueOrDefault(refund.RefundId);
            switch (refund.State)
            {
                case "owed" or "credited":
                    Check(found is not null && found.AmountMinor == refund.AmountMinor,
                        $"the store holds refund {refund.RefundId} of order {refund.OrderNo} as {refund.State} ({refund.AmountMinor}), the operator {(found is null ? "not at all" : $"of {found.AmountMinor}")}");
                    break;
                case "refused":
                    Check(found is null, $"the store holds refund {refund.RefundId} of order {refund.OrderNo} as refused, yet the operator owes it");
                    break;
                default:
                    Problem($"refund {refund.RefundId} of order {refund.OrderNo} is still {refund.State} at the store after it was asked again");
                    break;
            }
        }

        var storeIds = atStore.Select(r => r.RefundId).ToHashSet(StringComparer.Ordinal);
        var paidFor = settlements.ToDictionary(s => s.SettlementId, StringComparer.Ordinal);
        foreach (var refund in refunds)
        {
            Check(storeIds.Contains(refund.RefundId), $"the operator holds refund {refund.RefundId}, which the store never recorded");
            var credit = cardCredits.Where(c => c.Purpose == "refund" && c.SourceId == refund.RefundId).ToList();
            Check(credit is [{ State: "credited" } c] && c.AmountMinor == refund.AmountMinor && c.CardId == refund.CardId,
                $"refund {refund.RefundId} of {refund.AmountMinor} has card credits [{string.Join(", ", credit.Select(c => $"{c.AmountMinor} {c.State}"))}] after the final syncs");
        }

        foreach (var group in refunds.GroupBy(r => r.SettlementId, StringComparer.Ordinal))
        {
            var settlement = paidFor.GetValueOrDefault(group.Key);
            Check(settlement is { State: "completed" } && group.Sum(r => r.AmountMinor) <= settlement.AmountMinor,
                $"settlement {group.Key} ({settlement?.State ?? "absent"}, {settlement?.AmountMinor}) has refunds of {group.Sum(r => r.AmountMinor)}");
        }

        return refunds;
    }

    // A transfer the card ran owes its payee one card credit, taken; a cash-out it ran, one payout; the others neither.
    private async Task CheckDecreasesAsync(InProcessSystem system, IReadOnlyList<CardCreditRecord> cardCredits, IReadOnlyList<DecreaseRecord> decreases)
    {
        IReadOnlyList<(string Reference, long AmountMinor)> payouts;
        await using (var connection = await system.Database.OpenAsync())
        {
            payouts = [.. await connection.QueryAsync<(string, long)>("SELECT reference, amount_minor FROM journal WHERE account = 'payouts'")];
        }

        foreach (var decrease in decreases)
        {
            var ran = decrease.State is "debited" or "paid" or "returned";
            Check(decrease.State is not "debiting", $"{decrease.Kind} {decrease.Id} is still debiting after the final syncs");
            if (decrease.Kind == "transfer")
            {
                var credit = cardCredits.Where(c => c.Purpose == "transfer" && c.SourceId == decrease.Id).ToList();
                Check(ran ? credit is [{ State: "credited" } c] && c.CardId == decrease.PayeeCardId && c.AmountMinor == decrease.AmountMinor : credit.Count == 0,
                    $"transfer {decrease.Id} of {decrease.AmountMinor} is {decrease.State}, its payee's card credits: [{string.Join(", ", credit.Select(c => $"{c.AmountMinor} {c.State} for {c.CardId[^4..]}"))}]");
            }
            else
            {
                var paidOut = payouts.Where(p => p.Reference == decrease.Id && p.AmountMinor > 0).ToList();
                Check(ran ? paidOut is [var p] && p.AmountMinor == decrease.AmountMinor : paidOut.Count == 0,
                    $"cash-out {decrease.Id} of {decrease.AmountMinor} is {decrease.State}, with payouts [{string.Join(", ", paidOut.Select(p => p.AmountMinor))}]");
            }
        }
    }

    private static async Task<IReadOnlyList<CardCreditRecord>> CardCreditsAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return [.. await connection.QueryAsync<CardCreditRecord>(
            "SELECT credit_id AS CreditId, card_id AS CardId, purpose AS Purpose, source_id AS SourceId, amount_minor AS AmountMinor, state AS State FROM card_credits ORDER BY created_at")];
    }

    private static async Task<IReadOnlyList<DecreaseRecord>> DecreasesAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return [.. await connection.QueryAsync<DecreaseRecord>(
            """
            SELECT 'transfer' AS Kind, transfer_id AS Id, card_id AS CardId, payee_card_id AS PayeeCardId, amount_minor AS AmountMinor, state AS State FROM transfers
            UNION ALL
            SELECT 'cash-out', cashout_id, card_id, NULL, amount_minor, state FROM cashouts
            """)];
    }

    private static async Task<IReadOnlyList<SettlementRecord>> SettlementsAsync(InProcessSystem system)
    {
        await using var connection = await system.Database.OpenAsync();
        return [.. await connection.QueryAsync<SettlementRecord>(
            """
            SELECT settlement_id AS SettlementId, order_no AS OrderNo, card_id AS CardId, state AS State, amount_minor AS AmountMinor,
                   resolved_by AS ResolvedBy, store_told_at AS StoreToldAt
            FROM settlements ORDER BY created_at
            """)];
    }

    /// <summary>SELECT and GET DATA through the card's reader, with no fault in force.</summary>
    private static PurseStatus ReadCard(CardSlot card)
    {
        var wallet = new WalletCard(card);
        wallet.Select();
        return wallet.Status();
    }

    private void Check(bool holds, string problem)
    {
        if (!holds)
        {
            Problem(problem);
        }
    }

    private void Problem(string problem)
    {
        _problems.Add(problem);
        output.WriteLine($"PROBLEM (seed {_seed}): {problem}");
    }

    private sealed class RefundRecord
    {
        public required string RefundId { get; init; }

        public required string SettlementId { get; init; }

        public required string CardId { get; init; }

        public required long AmountMinor { get; init; }

        public required string State { get; init; }
    }

    private sealed class CardCreditRecord
    {
        public required string CreditId { get; init; }

        public required string CardId { get; init; }

        public required string Purpose { get; init; }

        public required string SourceId { get; init; }

        public required long AmountMinor { get; init; }

        public required string State { get; init; }
    }

    private sealed class DecreaseRecord
    {
        public required string Kind { get; init; }

        public required string Id { get; init; }

        public required string CardId { get; init; }

        public string? PayeeCardId { get; init; }

        public required long AmountMinor { get; init; }

        public required string State { get; init; }
    }

    private sealed class TopUpRecord
    {
        public required string TopUpId { get; init; }

        public required string CardId { get; init; }

        public required string State { get; init; }

        public required long AmountMinor { get; init; }
    }

    private sealed class SettlementRecord
    {
        public required string SettlementId { get; init; }

        public required string OrderNo { get; init; }

        public required string CardId { get; init; }

        public required string State { get; init; }

        public required long AmountMinor { get; init; }

        public string? ResolvedBy { get; init; }

        public string? StoreToldAt { get; init; }
    }
}
