using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Dapper;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Testing;
using Xunit.Abstractions;

namespace OpenPurse.Operator.Tests;

/// <summary>
/// The operator under load and under races, over real HTTP (docs/operations.md, "Isolation"): hundreds
/// of purchases at once lose no update, and the requests that race for one card — starts, completions,
/// syncs — move its value once at most. Every test runs on each registry engine (the subclasses at the
/// end of this file); each ends with the operator's own reconciliation (<see cref="Ledger"/>) clean.
/// </summary>
public abstract class ConcurrencyTest(ITestOutputHelper output)
{
    /// <summary>Cards buying at the same moment in the throughput test.</summary>
    private const int Cards = 300;

    /// <summary>Stores they buy from, each with its own key.</summary>
    private const int Stores = 30;

    /// <summary>Bills started at the same moment for one card.</summary>
    private const int RacingBills = 16;

    /// <summary>Rounds of racing starts on one card: more rounds, more interleavings seen.</summary>
    private const int RaceRounds = 5;

    /// <summary>The same card answer posted at the same moment.</summary>
    private const int RacingCompletions = 20;

    /// <summary>Syncs of one card posted at the same moment.</summary>
    private const int RacingSyncs = 10;

    /// <summary>Rounds of racing syncs, each for a debit of its own.</summary>
    private const int SyncRounds = 4;

    private static Money Eur(long minor) => new(minor, Currency.Eur);

    /// <summary>An operator kit on this class's engine.</summary>
    private protected abstract Task<OperatorKit> StartKitAsync(long loadMinor = 10_000, TimeSpan? settlementTimeout = null, TimeSpan? sweepInterval = null);

    [SuiteFact]
    public async Task Purchases_HundredsOfCardsAtDozensOfStores_AllCompleteNoLostUpdate()
    {
        static long LoadOf(int card) => 2_000 + (10L * card);
        static long BillOf(int card) => 100 + card; // distinct: each store's total tells exactly which bills it got

        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await using var kit = await StartKitAsync(loadMinor: 0);
        var stores = Enumerable.Range(0, Stores).Select(i => (Id: $"store-{i:D2}", Key: EcdsaSigningKey.Generate())).ToArray();
        try
        {
            var preparation = Stopwatch.StartNew();
            await Task.WhenAll(stores.Select(store => kit.RegisterStoreAsync(store.Id, store.Key)));
            var readers = await kit.IssueCardsAsync(Cards, LoadOf);
            var storeOf = Enumerable.Range(0, Cards).Select(_ => random.Next(Stores)).ToArray();
            var bills = Enumerable.Range(0, Cards).Select(i => kit.Bill(Eur(BillOf(i)), key: stores[storeOf[i]].Key, storeId: stores[storeOf[i]].Id)).ToArray();
            output.WriteLine($"{Stores} stores registered, {Cards} cards issued and loaded, bills signed: {preparation.ElapsedMilliseconds} ms");

            var concurrent = Stopwatch.StartNew();
            var outcomes = await AllAtOnceAsync(Cards, random, async i =>
            {
                using var start = await kit.StartAsync(bills[i], reader: readers[i]);
                if (start.StatusCode != HttpStatusCode.Created)
                {
                    return new Failure(i, "start", (int)start.StatusCode, await start.Content.ReadAsStringAsync());
                }

                var started = (await start.Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
                using var completed = await kit.CompleteAsync(started.SettlementId, kit.RunCard(started, bills[i], reader: readers[i]));
                return completed.StatusCode == HttpStatusCode.OK ? null : new Failure(i, "completion", (int)completed.StatusCode, await completed.Content.ReadAsStringAsync());
            });
            concurrent.Stop();
            output.WriteLine($"{Cards} purchases at once: {concurrent.ElapsedMilliseconds} ms, {Cards / concurrent.Elapsed.TotalSeconds:F1} purchases/s");

            // The books first: they must hold even when a purchase failed.
            var report = await kit.ReconcileAsync();
            Assert.True(report.IsClean, report.ToText());
            var failures = outcomes.OfType<Failure>().ToArray();
            Assert.True(failures.Length == 0,
                $"{failures.Length} of {Cards} purchases did not complete ({string.Join(", ", failures.GroupBy(f => $"{f.Step} {f.Status}").Select(g => $"{g.Key}: {g.Count()}"))}):\n"
                + string.Join('\n', failures.Take(5)));
            var balances = readers.Select((reader, i) => (Card: i, Balance: kit.Balance(reader).MinorUnits)).ToArray();
            Assert.All(balances, card => Assert.Equal(LoadOf(card.Card) - BillOf(card.Card), card.Balance));
            var eur = Assert.Single(report.Currencies);
            Assert.Equal("EUR", eur.Currency);
            Assert.Equal(Enumerable.Range(0, Cards).Sum(LoadOf), eur.Issued);
            Assert.Equal(Enumerable.Range(0, Cards).Sum(BillOf), eur.Stores);
            Assert.Equal(0, eur.Reversals);
            Assert.Equal(eur.Issued, eur.Cards + eur.Stores);

            // Each store's account holds exactly the bills it got: no lost and no doubled posting.
            var expected = Enumerable.Range(0, Cards).GroupBy(i => stores[storeOf[i]].Id).ToDictionary(g => "store:" + g.Key, g => g.Sum(BillOf));
            await using var connection = await kit.Service<Database>().OpenAsync();
            var actual = (await connection.QueryAsync<(string Account, long Sum)>(
                "SELECT account, CAST(SUM(amount_minor) AS BIGINT) FROM journal WHERE account LIKE 'store:%' GROUP BY account")).ToDictionary(row => row.Account, row => row.Sum);
            Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), actual.OrderBy(p => p.Key, StringComparer.Ordinal));
            Assert.Equal(Cards, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM settlements WHERE state = 'completed'"));
        }
        finally
        {
            Array.ForEach(stores, store => store.Key.Dispose());
            await kit.ClosePooledConnectionsAsync(); // else the database cannot be dropped: the test cluster takes 100 connections
        }
    }

    [SuiteFact]
    public async Task Start_ManyBillsOnOneCardAtOnce_OneDebitAtMost()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await using var kit = await StartKitAsync();
        var balance = 10_000L;
        for (var round = 0; round < RaceRounds; round++)
        {
            var amounts = Enumerable.Range(0, RacingBills).Select(j => 10L + (round * RacingBills) + j).ToArray();
            var bills = amounts.Select(amount => kit.Bill(Eur(amount))).ToArray();
            // A card answers one INITIALIZE UPDATE at a time and each one ends the session before: the
            // greetings come one after the other, all at the same counter, the last one the card's open session.
            var greetings = bills.Select(bill => kit.Greeting(bill)).ToArray();
            var newest = RacingBills - 1;

            var responses = await AllAtOnceAsync(RacingBills, random, j => kit.StartAsync(bills[j], greeting: greetings[j]));
            var started = new Dictionary<int, StartSettlementResponse>();
            try
            {
                for (var j = 0; j < RacingBills; j++)
                {
                    if (responses[j].StatusCode == HttpStatusCode.Created)
                    {
                        started[j] = (await responses[j].Content.ReadFromJsonAsync<StartSettlementResponse>(ProtocolJson.Options))!;
                    }
                    else
                    {
                        // A start that lost the race to a later session, or to too many at once.
                        Assert.Equal("card.busy", await OperatorKit.CodeOf(responses[j]));
                    }
                }
            }
            finally
            {
                Array.ForEach(responses, r => r.Dispose());
            }

            // Each start that committed voided the one before it (that card session is over): one open
            // settlement. One after the other (SQLite) it is always the newest greeting's; on PostgreSQL
            // a start whose void of the open settlement loses to a concurrent start answers card.busy
            // without checking again, so an older one may stay open, whose DEBIT can no longer run.
            var before = await StatesAsync(kit, started);
            var open = Assert.Single(before, s => s.Value != "voided");
            Assert.Equal("authorized", open.Value);
            Assert.All(before.Where(s => s.Key != open.Key), s => Assert.Equal("voided", s.Value));

            // Every command pair goes to the card. Only the newest session's commands can run, and only as
            // the first EXTERNAL AUTHENTICATE after its INITIALIZE UPDATE: every EXTERNAL AUTHENTICATE,
            // verified or not, uses up the card's pending session, and a DEBIT runs only in its own session.
            // So the card pays at most once, and pays only when the newest greeting's settlement is the
            // open one and its pair goes first: even rounds send it first, odd rounds in a random order.
            var order = started.Keys.OrderBy(_ => random.Next()).ToList();
            if (round % 2 == 0 && order.Remove(newest))
            {
                order.Insert(0, newest);
            }

            var answers = order.ToDictionary(j => j, j => kit.TryRunCard(started[j].ExternalAuthenticate, started[j].Debit, new Approval(Eur(amounts[j]), SignedMessage.DigestBytes(bills[j]))).Command);
            var debited = open.Key == newest && order[0] == newest;
            output.WriteLine($"round {round}: {started.Count} of {RacingBills} started, open: bill {open.Key}, sent first: bill {order[0]}, debit expected: {debited}"
                + (open.Key == newest ? "" : $" (one after the other, the newest bill {newest} would be open; it was answered card.busy)"));
            Assert.Equal(debited ? [open.Key] : Array.Empty<int>(), answers.Where(a => a.Value.IsOk).Select(a => a.Key));

            var posted = await AllAtOnceAsync(order.Count, random, async i =>
            {
                using var response = await kit.CompleteAsync(started[order[i]].SettlementId, answers[order[i]]);
                return (Bill: order[i], Code: response.StatusCode == HttpStatusCode.OK ? "ok" : await OperatorKit.CodeOf(response));
            });
            Assert.All(posted, p => Assert.Equal(
                p.Bill == open.Key ? (debited ? "ok" : "card.refused") : "settlement.voided",
                p.Code));

            var after = await StatesAsync(kit, started);
            Assert.Equal(debited ? 1 : 0, after.Count(s => s.Value == "completed"));
            Assert.Equal(debited ? "completed" : "authorized", after[open.Key]);
            Assert.All(after.Where(s => s.Key != open.Key), s => Assert.Equal("voided", s.Value));
            balance -= debited ? amounts[open.Key] : 0;
            Assert.Equal(Eur(balance), kit.Balance());
            var report = await kit.ReconcileAsync();
            Assert.True(report.IsClean, report.ToText());
        }

        await using var connection = await kit.Service<Database>().OpenAsync();
        var debits = await connection.ExecuteScalarAsync<long>(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM journal WHERE account LIKE 'store:%'");
        Assert.Equal(10_000 - balance, debits);
    }

    [SuiteFact]
    public async Task Complete_SameAnswerManyTimesAtOnce_OneDebit()
    {
        await using var kit = await StartKitAsync();
        var bill = kit.Bill(Eur(700));
        var started = await kit.StartOkAsync(bill);
        var answer = kit.RunCard(started, bill);
        Assert.Equal(StatusWord.Ok, answer.Status);

        var completions = await AllAtOnceAsync(RacingCompletions, Random.Shared, async _ =>
        {
            using var response = await kit.CompleteAsync(started.SettlementId, answer);
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            return (await response.Content.ReadFromJsonAsync<CompleteSettlementResponse>(ProtocolJson.Options))!;
        });

        // One completion won; the others waited for it and answered from what it did: its ACN.
        var notice = Assert.Single(completions.Select(c => c.CompletionNotice).Distinct());
        var acn = SignedMessage.Verify<CompletionNotice>(notice, kit.OperatorKeys, MessageTypes.CompletionNotice, out _);
        Assert.NotNull(acn);
        Assert.Equal((started.SettlementId, Eur(700)), (acn.SettlementId, acn.Amount));
        Assert.Equal(Eur(9_300), kit.Balance());
        await using var connection = await kit.Service<Database>().OpenAsync();
        Assert.Equal(1, await connection.ExecuteScalarAsync<long>(
            "SELECT COUNT(DISTINCT entry_id) FROM journal WHERE reference = @id", new { id = started.SettlementId.ToString() }));
        var report = await kit.ReconcileAsync();
        Assert.True(report.IsClean, report.ToText());
        var eur = Assert.Single(report.Currencies);
        Assert.Equal((10_000L, 9_300L, 700L), (eur.Issued, eur.Cards, eur.Stores));
    }

    [SuiteFact]
    public async Task Sync_ManyAtOnceForOneCard_OneCredit()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var timeout = TimeSpan.FromMilliseconds(200);
        await using var kit = await StartKitAsync(settlementTimeout: timeout, sweepInterval: TimeSpan.Zero);
        var newest = RacingSyncs - 1;
        for (var round = 0; round < SyncRounds; round++)
        {
            var amount = Eur(700 + round);
            var bill = kit.Bill(amount);
            var started = await kit.StartOkAsync(bill);
            Assert.Equal(StatusWord.Ok, kit.RunCard(started, bill).Status); // the card pays; its answer never reaches the operator
            await Task.Delay(timeout + TimeSpan.FromMilliseconds(100));
            Assert.Equal(1, (await kit.SweepAsync()).Expired); // the store is told it is not paid: the amount is owed back to the card
            Assert.Equal(Eur(10_000) - amount, kit.Balance());

            // Even rounds race from expired; odd rounds from reversing: one sync came first, and the
            // CREDIT it made never reached the card (the wallet lost it).
            var fromReversing = round % 2 == 1;
            if (fromReversing)
            {
                using var first = await kit.SyncAsync(kit.SyncGreeting());
                var firstSync = (await first.Content.ReadFromJsonAsync<CardSyncResponse>(ProtocolJson.Options))!;
                Assert.Equal([new SettlementOutcome(started.SettlementId, "reversing")], firstSync.Resolved);
                Assert.NotNull(firstSync.Credit);
            }

            // Each sync with its own greeting, one after the other; the last is the card's open session.
            var requests = Enumerable.Range(0, RacingSyncs).Select(_ => kit.SyncGreeting()).ToArray();
            var syncs = await AllAtOnceAsync(RacingSyncs, random, async k =>
            {
                using var response = await kit.SyncAsync(requests[k]);
                Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
                return (await response.Content.ReadFromJsonAsync<CardSyncResponse>(ProtocolJson.Options))!;
            });

            // The first sync to commit finds the card's debit in its log (expired → reversing) and makes a
            // CREDIT; a later one makes it again for a later session (that session proves the earlier
            // CREDIT never ran and never can), an earlier one makes none. So in whatever order they run
            // one after the other, the newest greeting's sync makes a CREDIT, and the operator ends up
            // holding that one: the only one the card can still take.
            var credits = syncs.Select((sync, k) => (Sync: k, sync.Credit)).Where(c => c.Credit is not null).Select(c => (c.Sync, Credit: c.Credit!)).ToArray();
            string held;
            await using (var registry = await kit.Service<Database>().OpenAsync())
            {
                var reversal = await registry.ExecuteScalarAsync<string?>("SELECT reversal_id FROM settlements WHERE settlement_id = @id", new { id = started.SettlementId.ToString() });
                held = credits.Where(c => c.Credit.ValueUpdateId.ToString() == reversal).Select(c => $"greeting {c.Sync}'s").SingleOrDefault() ?? $"none returned ({reversal ?? "none"})";
            }

            var made = $"{credits.Length} of {RacingSyncs} syncs made a credit, for greetings [{string.Join(", ", credits.Select(c => c.Sync))}]; the operator holds {held}";
            output.WriteLine($"round {round}, from {(fromReversing ? "reversing" : "expired")}: {made}");
            Assert.Equal(fromReversing ? 0 : 1, syncs.Count(s => s.Resolved.Any(r => r.SettlementId == started.SettlementId && r.State == "reversing")));
            Assert.True(credits.Any(c => c.Sync == newest), $"The newest greeting's sync (the card's open session) got no credit, so the card can take none of them: {made}.");

            // Only the newest session's CREDIT can run, and only as the first EXTERNAL AUTHENTICATE after
            // its INITIALIZE UPDATE (each one, verified or not, uses up the card's pending session): the
            // credits go to the card newest first, then all the others, which the card refuses.
            var answers = credits.OrderByDescending(c => c.Sync).Select(c =>
            {
                var update = SignedMessage.Verify<ValueUpdate>(c.Credit.ValueUpdate, kit.OperatorKeys, MessageTypes.ValueUpdate, out var error);
                Assert.True(update is not null, error);
                Assert.Equal((started.SettlementId, amount, c.Credit.ValueUpdateId), (update.SourceId, update.Amount, update.ValueUpdateId));
                var approval = new Approval(update.Amount, Base64Url.DecodeFromChars(update.OrderDigest));
                return (c.Sync, c.Credit.ValueUpdateId, Answer: kit.TryRunCard(c.Credit.ExternalAuthenticate, c.Credit.Credit, approval).Command);
            }).ToArray();
            Assert.Equal([newest], answers.Where(a => a.Answer.IsOk).Select(a => a.Sync));
            Assert.Equal(Eur(10_000), kit.Balance());

            var posted = await AllAtOnceAsync(answers.Length, random, async i =>
            {
                using var response = await kit.CompleteCreditAsync(answers[i].ValueUpdateId, answers[i].Answer);
                return (answers[i].Sync, Code: response.StatusCode == HttpStatusCode.OK ? "ok" : await OperatorKit.CodeOf(response));
            });
            // The operator holds the newest CREDIT only: the card's answer to it is taken; the others were replaced.
            Assert.True(posted.All(p => p.Code == (p.Sync == newest ? "ok" : "credit.not_found")),
                $"The operator did not take the card's answer to the newest credit and only that: {string.Join(", ", posted.OrderBy(p => p.Sync).Select(p => $"greeting {p.Sync}: {p.Code}"))}; {made}.");

            var view = await kit.GetSettlementAsync(started);
            Assert.Equal("reversed", view!.State);
            using (var again = await kit.SyncAsync(kit.SyncGreeting()))
            {
                Assert.Equal(HttpStatusCode.OK, again.StatusCode);
                Assert.Null((await again.Content.ReadFromJsonAsync<CardSyncResponse>(ProtocolJson.Options))!.Credit); // nothing more is owed
            }

            Assert.Equal(Eur(10_000), kit.Balance());
            await using var connection = await kit.Service<Database>().OpenAsync();
            Assert.Equal(2, await connection.ExecuteScalarAsync<long>(
                "SELECT COUNT(DISTINCT entry_id) FROM journal WHERE reference = @id", new { id = started.SettlementId.ToString() })); // the debit found, its credit back
            var report = await kit.ReconcileAsync();
            Assert.True(report.IsClean, report.ToText());
            var eur = Assert.Single(report.Currencies);
            Assert.Equal((10_000L, 10_000L, 0L, 0L), (eur.Issued, eur.Cards, eur.Stores, eur.Reversals));
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/>(0 … count − 1) on the thread pool, all released at one moment and
    /// queued in a random order, so that no index is favoured by the order the tasks were made in.
    /// </summary>
    private static async Task<T[]> AllAtOnceAsync<T>(int count, Random random, Func<int, Task<T>> action)
    {
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = new Task<T>[count];
        foreach (var i in Enumerable.Range(0, count).OrderBy(_ => random.Next()))
        {
            tasks[i] = Task.Run(async () =>
            {
                await go.Task;
                return await action(i);
            });
        }

        go.SetResult();
        return await Task.WhenAll(tasks);
    }

    /// <summary>A purchase that did not complete: which card, at which round trip, the operator's answer.</summary>
    private sealed record Failure(int Card, string Step, int Status, string Body);

    private static async Task<Dictionary<int, string>> StatesAsync(OperatorKit kit, Dictionary<int, StartSettlementResponse> started)
    {
        var states = new Dictionary<int, string>();
        foreach (var (bill, response) in started)
        {
            states[bill] = (await kit.GetSettlementAsync(response))!.State;
        }

        return states;
    }
}

/// <summary>The races on the embedded default registry, SQLite.</summary>
public sealed class ConcurrencyOnSqliteTest(ITestOutputHelper output) : ConcurrencyTest(output)
{
    private protected override Task<OperatorKit> StartKitAsync(long loadMinor = 10_000, TimeSpan? settlementTimeout = null, TimeSpan? sweepInterval = null) =>
        OperatorKit.StartAsync(loadMinor, settlementTimeout: settlementTimeout, sweepInterval: sweepInterval);
}

/// <summary>The races on PostgreSQL: one private cluster for the class, a fresh database per test.</summary>
[UsesComponents(Components.PostgreSql)]
public sealed class ConcurrencyOnPostgreSqlTest(SharedPostgresCluster postgres, ITestOutputHelper output) : ConcurrencyTest(output), IClassFixture<SharedPostgresCluster>
{
    private protected override async Task<OperatorKit> StartKitAsync(long loadMinor = 10_000, TimeSpan? settlementTimeout = null, TimeSpan? sweepInterval = null) =>
        await OperatorKit.StartAsync(loadMinor, postgres: await postgres.CreateDatabaseAsync(), settlementTimeout: settlementTimeout, sweepInterval: sweepInterval);
}
