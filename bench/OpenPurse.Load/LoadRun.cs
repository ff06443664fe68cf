using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using OpenPurse.Card;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;
using Spectre.Console;

namespace OpenPurse.Load;

/// <summary>What to run: the system's setup and how much load.</summary>
/// <param name="Database">sqlite, postgresql or ha (Patroni: a primary and two standbys, one synchronous).</param>
/// <param name="Profile">The settlement profile every purchase uses.</param>
/// <param name="Cards">Cards, each with its own wallet buying one purchase after another.</param>
/// <param name="Stores">Member stores; card i buys from store i mod Stores.</param>
/// <param name="Nodes">Operator nodes.</param>
/// <param name="Purchases">A fixed number of purchases to measure, or null for <paramref name="Duration"/>.</param>
/// <param name="Duration">How long to measure when no count is given.</param>
/// <param name="Warmup">Load before measuring, so that JIT, pools and key caches are warm.</param>
/// <param name="MeasureBound">Whether to measure the signature bound first.</param>
/// <param name="Rate">
/// Open loop: purchases start at this many per second, whatever the answers (each card takes the
/// next start when it is free), and a purchase's latency counts from when it was due, so a stall
/// shows in the percentiles instead of slowing the load. Null: closed loop, every card buys again
/// as soon as its purchase ends.
/// </param>
/// <param name="Hold">
/// Settlements held open after the load for the operator's memory per in-flight settlement, one
/// per card: cards beyond <paramref name="Cards"/> are issued for it and buy nothing else. Null:
/// one per buying card.
/// </param>
/// <param name="Mix">What the wallets do: purchases only (null), or purchases mixed with top-ups and refunds.</param>
/// <param name="Failover">On the HA cluster: its leader killed or cut off at a moment of the measured phase; null for none.</param>
internal sealed record LoadSettings(string Database, SettlementProfile Profile, int Cards, int Stores, int Nodes, long? Purchases, TimeSpan Duration, TimeSpan Warmup, bool MeasureBound = true, double? Rate = null, int? Hold = null,
    Workload? Mix = null, FailoverPlan? Failover = null)
{
    public Workload Workload => Mix ?? Workload.Purchases;

    /// <summary>Cards to issue: the buying ones, and more if the memory reading holds more settlements.</summary>
    public int CardsIssued => Math.Max(Cards, Hold ?? Cards);

    public string ProfileName => Profile == SettlementProfile.Lean ? "lean" : "signed";
}

/// <summary>
/// One load run: the signature bound, then the system, then every card's wallet buying in a loop
/// (the wallet's own <see cref="PurchaseFlow"/>, every signature checked) for the warm-up and then
/// the measured phase, with the operator's memory sampled; at the end the operator's ledger must
/// balance and hold exactly the purchases, top-ups and refunds that completed.
/// </summary>
internal static class LoadRun
{
    private static readonly TimeSpan s_sampleInterval = TimeSpan.FromMilliseconds(250);

    public static async Task<LoadReport> RunAsync(LoadSettings settings, IAnsiConsole console, CancellationToken cancellationToken)
    {
        var bound = settings.MeasureBound ? SignatureBoundMeter.Measure(settings.Profile) : null;
        if (bound is not null)
        {
            console.MarkupLineInterpolated($"[grey]•[/] Signature bound ({settings.ProfileName}): {bound.Signs} signs, {bound.Verifies} verifies, {bound.CardSessions} operator card sessions and the card's own per purchase: {bound.PurchaseMicroseconds:F0} µs on one core, [bold]{bound.PurchasesPerSecond:F0} purchases/s[/] on {Environment.ProcessorCount} cores");
        }

        // Enough for any run: 5 000.00 EUR buys 50 000 articles at 0.10 EUR. A card that is topped
        // up holds at most 1 000.00 EUR: 500.00 EUR still buys 5 000, and leaves room for top-ups.
        var topUps = settings.Workload.Has(Workload.TopUp);
        var load = Money.Parse(topUps ? "500.00 EUR" : "5000.00 EUR");
        await using var system = await LoadSystem.StartAsync(settings.Database, settings.Nodes, settings.Stores, settings.CardsIssued, load,
            step => console.MarkupLineInterpolated($"[grey]•[/] {step}"), withAuthorizer: topUps);
        console.MarkupLineInterpolated($"[grey]•[/] Operator start-up to its first answered request: {system.OperatorStartup.TotalMilliseconds:F0} ms");

        var latencies = new Latencies();
        var inFlight = new InFlight();
        var measuring = false;
        var clock = settings.Failover is null ? null : new FailoverClock();
        using var connections = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) };
        var wallets = Enumerable.Range(0, settings.Cards)
            .Select(i => new CardWallet(system, settings, i, connections, latencies, inFlight, () => Volatile.Read(ref measuring), clock))
            .ToArray();
        try
        {
            var errors = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
            var warmupErrors = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
            var doneBefore = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
            var done = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
            if (settings.Warmup > TimeSpan.Zero)
            {
                console.MarkupLineInterpolated($"[grey]•[/] Warming up for {settings.Warmup.TotalSeconds:F0} s");
                await DriveAsync(wallets, null, settings.Warmup, settings.Rate, warmupErrors, doneBefore, console, "warm-up", cancellationToken);
                foreach (var (code, n) in warmupErrors)
                {
                    console.MarkupLineInterpolated($"[yellow]•[/] warm-up: {n} purchases failed with {code}");
                }
            }

            // The operator at rest, warm: what the load's memory is compared with.
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var idle = OperatorMemory(system);

            Volatile.Write(ref measuring, true);
            var samples = new ConcurrentQueue<(long Bytes, int InFlight)>();
            using var sampling = new CancellationTokenSource();
            var sampler = SampleAsync(system, inFlight, samples, sampling.Token);
            var cpuBefore = CpuTimes(system);
            var started = Stopwatch.GetTimestamp();
            var watch = settings.Failover is { } plan && clock is not null
                ? new FailoverWatch(system.Cluster ?? throw new InvalidOperationException("A failover needs the HA cluster (--database ha)."), plan, system.OperatorUrl, clock)
                : null;
            var watching = watch?.RunAsync(started, cancellationToken) ?? Task.CompletedTask;
            await DriveAsync(wallets, settings.Purchases, settings.Duration, settings.Rate, errors, done, console, "load", cancellationToken);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var completed = done.GetValueOrDefault(Workload.Purchase);
            var cpuAfter = CpuTimes(system);
            double PerPurchase(int party) => completed == 0 ? 0 : Math.Round((cpuAfter[party] - cpuBefore[party]).TotalMilliseconds / completed, 2);
            var cpu = new CpuSummary(PerPurchase(0), PerPurchase(1), PerPurchase(2), PerPurchase(3));
            await sampling.CancelAsync();
            await sampler;
            Volatile.Write(ref measuring, false);

            FailoverSummary? failover = null;
            if (watch is not null)
            {
                // The fault may have come late in the load: its new leader and the old member's return are waited for.
                await watching;
                var runErrors = warmupErrors.Concat(errors).GroupBy(e => e.Key, StringComparer.Ordinal)
                    .OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(e => e.Value), StringComparer.Ordinal);
                failover = await watch.FinishAsync(runErrors, settings.Failover!.At);
                ReportFailover(console, failover);
                if (watch.RejoinFailure is { } rejoin)
                {
                    throw new InvalidOperationException($"The old leader {failover.OldLeader} did not rejoin as a standby: {rejoin.Message}", rejoin);
                }
            }

            // What a card's greeting proves is the operator's to settle: a purchase whose round
            // trip 2 never got through is completed (or its debit owed back) at the card's sync.
            await SyncEveryCardAsync(wallets, console);
            long Total(string kind) => doneBefore.GetValueOrDefault(kind) + done.GetValueOrDefault(kind);
            var checks = await CheckLedgerAsync(system, wallets, settings.CardsIssued, load, new Completed(Total(Workload.Purchase), Total(Workload.TopUp), Total(Workload.Refund)),
                exact: (warmupErrors.IsEmpty && errors.IsEmpty) || !(settings.Workload.Has(Workload.TopUp) || settings.Workload.Has(Workload.Refund)), failed: !warmupErrors.IsEmpty || !errors.IsEmpty);
            foreach (var check in checks)
            {
                console.MarkupLineInterpolated($"[green]✓[/] {check}");
            }

            var throughput = completed / seconds;
            var loaded = Median(samples.Select(s => (double)s.Bytes));
            var flying = Median(samples.Select(s => (double)s.InFlight));
            var (held, heapBefore, heapHeld) = await HoldSettlementsAsync(system, settings, wallets, connections, console);
            var memory = new MemorySummary(idle, (long)loaded, flying, flying > 0 ? Math.Round((loaded - idle) / flying) : null,
                held, heapBefore, heapHeld, held > 0 ? Math.Round((double)(heapHeld - heapBefore) / held) : null);
            return new LoadReport(
                settings.Database,
                settings.ProfileName,
                settings.Cards,
                settings.Stores,
                settings.Nodes,
                Environment.ProcessorCount,
                Math.Round(seconds, 2),
                completed,
                Math.Round(throughput, 1),
                bound ?? new SignatureBound(0, 0, 0, 0, 0),
                bound is null ? 0 : Math.Round(throughput / bound.PurchasesPerSecond, 3),
                latencies.Summary(Workload.Purchase),
                latencies.Summaries(name => !settings.Workload.Names(name)),
                errors.OrderBy(e => e.Key, StringComparer.Ordinal).ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal),
                memory,
                Math.Round(system.OperatorStartup.TotalMilliseconds, 1),
                cpu,
                settings.Rate,
                [.. settings.Workload.Kinds.Select(k => new KindSummary(k.Kind, k.Share, done.GetValueOrDefault(k.Kind), Math.Round(done.GetValueOrDefault(k.Kind) / seconds, 1), latencies.Summary(k.Kind),
                    k.Kind == Workload.Refund ? [latencies.Summary(CardWallet.RefundRequestPart), latencies.Summary(CardWallet.RefundSyncPart)] : null))],
                failover,
                checks);
        }
        finally
        {
            foreach (var wallet in wallets)
            {
                wallet.Dispose();
            }
        }
    }

    // Every holding card starts one more purchase and stops at the bill (the person declines): the
    // operator then holds one authorized settlement per card until its deadline. Its heap after a
    // full collection, before and while they are held. Many held make the reading: with 64 the
    // heap's own drift between two collections (about half a MiB) is as large as what they cost.
    private static async Task<(int Held, long Before, long While)> HoldSettlementsAsync(LoadSystem system, LoadSettings settings, CardWallet[] buying, HttpMessageHandler connections, IAnsiConsole console)
    {
        var extra = Enumerable.Range(buying.Length, settings.CardsIssued - buying.Length)
            .Select(i => new CardWallet(system, settings, i, connections, new Latencies(), new InFlight(), () => false)).ToArray();
        var holding = buying.Take(settings.Hold ?? buying.Length).Concat(extra).ToArray();
        try
        {
            var before = await OperatorHeapAsync(system);
            // As many at once as bought: more would open connections the load did not, and their
            // buffers would be counted as the settlements'.
            var held = 0;
            await Parallel.ForEachAsync(holding, new ParallelOptions { MaxDegreeOfParallelism = buying.Length }, async (wallet, _) =>
            {
                if (await wallet.StartAndDeclineAsync().ConfigureAwait(false))
                {
                    Interlocked.Increment(ref held);
                }
            });
            var heapHeld = await OperatorHeapAsync(system);
            console.MarkupLineInterpolated($"[grey]•[/] {held} settlements held open: the operator's heap after a full collection {before / 1048576.0:F2} → {heapHeld / 1048576.0:F2} MiB");
            return (held, before, heapHeld);
        }
        finally
        {
            foreach (var wallet in extra)
            {
                wallet.Dispose();
            }
        }
    }

    private static async Task<long> OperatorHeapAsync(LoadSystem system)
    {
        long sum = 0;
        foreach (var node in system.OperatorProcesses)
        {
            sum += await LiveHeap.AfterFullCollectionAsync(node);
        }

        return sum;
    }

    // Every wallet runs its operations until the count is used up or the time is over; those completed are counted by kind in done.
    private static async Task DriveAsync(CardWallet[] wallets, long? count, TimeSpan duration, double? rate, ConcurrentDictionary<string, long> errors, ConcurrentDictionary<string, long> done,
        IAnsiConsole console, string phase, CancellationToken cancellationToken)
    {
        var remaining = count ?? long.MaxValue;
        var origin = Stopwatch.GetTimestamp();
        var deadline = count is null ? origin + (long)(duration.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        long completed = 0;
        long failed = 0;
        long scheduled = -1;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var workers = wallets.Select(wallet => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && Stopwatch.GetTimestamp() < deadline && Interlocked.Decrement(ref remaining) >= 0)
            {
                // Open loop: the next start on the schedule, waited for if it is ahead.
                long? due = null;
                if (rate is { } perSecond)
                {
                    due = origin + (long)(Interlocked.Increment(ref scheduled) / perSecond * Stopwatch.Frequency);
                    if (due >= deadline)
                    {
                        break;
                    }

                    var ahead = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due.Value);
                    if (ahead > TimeSpan.Zero)
                    {
                        await Task.Delay(ahead, CancellationToken.None).ConfigureAwait(false);
                    }
                }

                if (await wallet.RunAsync(errors, due, stop.Token).ConfigureAwait(false) is { } kind)
                {
                    Interlocked.Increment(ref completed);
                    done.AddOrUpdate(kind, 1, (_, n) => n + 1);
                }
                else
                {
                    Interlocked.Increment(ref failed);
                }
            }
        }, CancellationToken.None)).ToArray();

        var all = Task.WhenAll(workers);
        var started = Stopwatch.GetTimestamp();
        var total = count is { } n ? n : duration.TotalSeconds;
        string Line() => $"{phase}: {Interlocked.Read(ref completed)} completed, {Interlocked.Read(ref completed) / Math.Max(Stopwatch.GetElapsedTime(started).TotalSeconds, 0.001):F0}/s, {Interlocked.Read(ref failed)} failed";
        double Done() => count is null ? Math.Min(Stopwatch.GetElapsedTime(started).TotalSeconds, total) : Interlocked.Read(ref completed) + Interlocked.Read(ref failed);
        if (console.Profile.Capabilities.Interactive)
        {
            await console.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn()).StartAsync(async progress =>
            {
                var task = progress.AddTask(Line(), maxValue: total);
                while (await Task.WhenAny(all, Task.Delay(s_sampleInterval, CancellationToken.None)) != all)
                {
                    task.Value = Done();
                    task.Description = Line();
                }

                task.Value = total;
                task.Description = Line();
            });
        }
        else
        {
            // A log, not a redrawn bar: one line a second.
            while (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None)) != all)
            {
                console.WriteLine(Line());
            }

            console.WriteLine(Line());
        }

        await all;
    }

    // The resident memory of all operator nodes, every sample beside the settlements in flight.
    private static async Task SampleAsync(LoadSystem system, InFlight inFlight, ConcurrentQueue<(long, int)> samples, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(s_sampleInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                samples.Enqueue((OperatorMemory(system), inFlight.Count));
            }
        }
        catch (OperationCanceledException)
        {
            // The load is over.
        }
    }

    // Processor time so far of the operator nodes, the store, this process and the database server.
    private static TimeSpan[] CpuTimes(LoadSystem system) =>
    [
        system.OperatorProcesses.Aggregate(TimeSpan.Zero, (sum, id) => sum + CpuTime(id)),
        CpuTime(system.StoreProcess),
        CpuTime(Environment.ProcessId),
        system.DatabaseProcesses().Aggregate(TimeSpan.Zero, (sum, id) => sum + CpuTime(id)),
    ];

    private static TimeSpan CpuTime(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return process.TotalProcessorTime;
        }
        catch (ArgumentException)
        {
            return TimeSpan.Zero; // ended meanwhile (a database backend)
        }
    }

    private static long OperatorMemory(LoadSystem system) => system.OperatorProcesses.Sum(id =>
    {
        using var process = Process.GetProcessById(id);
        return process.WorkingSet64;
    });

    // Every card syncs until it has nothing more to take. A node whose primary is gone answers 503
    // for seconds yet: a few attempts, a pause between them.
    private static async Task SyncEveryCardAsync(CardWallet[] wallets, IAnsiConsole console)
    {
        const int Attempts = 10;
        var pause = TimeSpan.FromSeconds(2);
        var resolved = 0;
        var credits = 0;
        foreach (var (wallet, index) in wallets.Select((w, i) => (w, i)))
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var (settled, taken) = await wallet.SyncUntilSettledAsync();
                    resolved += settled;
                    credits += taken;
                    break;
                }
                catch (Exception e) when (attempt < Attempts && e is WalletException or HttpRequestException or TaskCanceledException or IOException)
                {
                    await Task.Delay(pause);
                }
                catch (Exception e) when (e is WalletException or HttpRequestException or TaskCanceledException or IOException)
                {
                    throw new InvalidOperationException($"Card {index} could not sync after the load ({Attempts} attempts): {e.Message}", e);
                }
            }
        }

        console.MarkupLineInterpolated($"[grey]•[/] Every card synced: {resolved} settlements resolved by their greetings, {credits} credits taken");
    }

    private static void ReportFailover(IAnsiConsole console, FailoverSummary failover) =>
        console.MarkupLineInterpolated($"[grey]•[/] Failover ({failover.Kind} of {failover.OldLeader} at {failover.AtSeconds:F0} s): new leader {failover.NewLeader ?? "none"} after {failover.LeaderSeconds:F1} s, first purchase started after the fault completed {failover.FirstPurchaseSeconds:F1} s after it, {failover.OldLeader} a standby again after {failover.RejoinSeconds:F1} s");

    // Nothing lost, nothing made up: the books balance, and the stores are owed exactly the
    // settlements completed less what they refunded, nothing is pending (every refund completed
    // with the card's sync that took it), the operator issued the loads and the top-ups that
    // completed, and the card accounts hold what the cards themselves hold, as each card says
    // (GET DATA) and as the operations add up. Read on the registry the nodes share (on the HA
    // cluster, its primary now), after every card synced. When operations failed (a failover),
    // the registry's completed settlements are counted rather than the wallets' purchases: a
    // purchase whose wallet gave up may have completed at the operator, or at the card's sync;
    // every one whose wallet got its ACN must be among them, and no order paid twice. Then the
    // operator's careful examination, whose stores' statements say the mall's paid orders are
    // exactly the completed settlements. Returns what was checked; throws naming what is wrong.
    private static async Task<IReadOnlyList<string>> CheckLedgerAsync(LoadSystem system, CardWallet[] wallets, int cards, Money load, Completed completed, bool exact, bool failed)
    {
        var report = await system.ReconcileAsync();
        var eur = report.Currencies.SingleOrDefault(c => c.Currency == load.Currency.Code);
        List<string> wrong = [];
        List<string> passed = [];
        var settlements = await SettlementsAsync(system);
        var completedSettlements = settlements.Count(s => s.State == Completed.State);
        var acknowledged = wallets.SelectMany(w => w.Acknowledged).ToList();
        var byId = settlements.ToDictionary(s => s.Id);
        var notCompleted = acknowledged.Where(id => !byId.TryGetValue(id, out var found) || found.State != Completed.State).ToList();
        if (notCompleted.Count > 0)
        {
            wrong.Add($"{notCompleted.Count} settlements whose wallet got the ACN are not completed (e.g. {notCompleted[0]}: {(byId.TryGetValue(notCompleted[0], out var first) ? first.State : "unknown")})");
        }
        else
        {
            passed.Add($"every one of the {acknowledged.Count} settlements whose wallet got the ACN is completed");
        }

        var paidTwice = settlements.Where(s => s.State == Completed.State).GroupBy(s => (s.StoreId, s.OrderNo)).Where(g => g.Count() > 1).ToList();
        if (paidTwice.Count > 0)
        {
            wrong.Add($"{paidTwice.Count} orders have more than one completed settlement (e.g. {paidTwice[0].Key.StoreId} {paidTwice[0].Key.OrderNo})");
        }
        else
        {
            passed.Add($"no order of the {completedSettlements} completed settlements is paid twice");
        }

        if (!failed && completedSettlements != completed.Purchases)
        {
            wrong.Add($"{completedSettlements} completed settlements for {completed.Purchases} completed purchases");
        }

        if (!report.IsClean || eur is null)
        {
            wrong.Add("it does not reconcile clean");
        }
        else
        {
            passed.Add("reconcile is clean");
        }

        if (eur is not null && !exact && eur.Issued < cards * load.MinorUnits)
        {
            wrong.Add($"it issued {eur.Issued} minor units, less than the cards' loads");
        }
        else if (eur is not null && exact)
        {
            var stores = (completedSettlements * LoadSystem.Price.MinorUnits) - (completed.Refunds * CardWallet.RefundAmount.MinorUnits);
            var issued = (cards * load.MinorUnits) + (completed.TopUps * CardWallet.TopUpAmount.MinorUnits);
            var onCards = (cards - wallets.Length) * load.MinorUnits; // the cards issued only to be held afterwards have not bought yet
            foreach (var wallet in wallets)
            {
                onCards += wallet.Balance(load.Currency).MinorUnits;
            }

            var before = wrong.Count;
            Expect("owed to the stores", stores, eur.Stores);
            Expect("issued", issued, eur.Issued);
            Expect("pending for cards", 0, eur.Pending);
            Expect("owed to the cards, as the operations add up", issued - stores, eur.Cards);
            Expect("owed to the cards, as the cards hold it", onCards, eur.Cards);
            if (wrong.Count == before)
            {
                passed.Add($"the books are exact: the stores are owed {completedSettlements} settlements less {completed.Refunds} refunds, nothing pending, the card accounts hold what was issued less the stores' and what the chips hold");
            }
        }

        // A store that did not answer for its statement in time (3 s; a mall's statement of thousands
        // of orders, on a machine still busy) is a note of the examination, not a mismatch: ask again.
        var examination = await system.ExamineAsync();
        for (var attempt = 1; attempt < 2 && examination.Clean && examination.StoresCompared < system.Articles.Count; attempt++)
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            examination = await system.ExamineAsync();
        }

        if (!examination.Clean)
        {
            wrong.Add($"the examination is not clean: {examination.Summary} {string.Join("; ", examination.Findings.Where(f => f.Mismatch).Take(5).Select(f => $"{f.Kind} {string.Join(",", f.Transactions)}: {f.Detail}"))}");
        }
        else if (examination.StoresCompared < system.Articles.Count)
        {
            // Every store answers its statement, page by page, however many orders it has.
            wrong.Add($"only {examination.StoresCompared} store statements of {system.Articles.Count} compared: {string.Join("; ", examination.Findings.Select(f => $"{string.Join(",", f.Transactions)} {f.Detail}"))}");
        }
        else
        {
            passed.Add($"cards and stores agree: {examination.Summary}");
        }

        if (wrong.Count > 0)
        {
            throw new InvalidOperationException($"The operator's registry does not hold the {completed.Purchases} purchases, {completed.TopUps} top-ups and {completed.Refunds} refunds that completed: {string.Join("; ", wrong)}.\n{report.ToText()}");
        }

        return passed;

        void Expect(string what, long expected, long actual)
        {
            if (expected != actual)
            {
                wrong.Add($"{what}: {actual} minor units instead of {expected}");
            }
        }
    }

    // Every settlement of the registry: its id, state and order.
    private static async Task<List<(Guid Id, string State, string StoreId, string OrderNo)>> SettlementsAsync(LoadSystem system)
    {
        await using var connection = await system.OpenRegistry().OpenAsync();
        var rows = await connection.QueryAsync<(string Id, string State, string StoreId, string OrderNo)>("SELECT settlement_id, state, store_id, order_no FROM settlements");
        return [.. rows.Select(r => (Guid.Parse(r.Id, CultureInfo.InvariantCulture), r.State, r.StoreId, r.OrderNo))];
    }

    /// <summary>Operations completed of each kind, over the warm-up and the measured phase.</summary>
    private sealed record Completed(long Purchases, long TopUps, long Refunds)
    {
        /// <summary>The registry's state of a settlement the card paid and the store is owed (0001_registry.sql).</summary>
        public const string State = "completed";
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>
/// One card in its reader and the wallet that buys with it (and tops it up, and syncs it to take its
/// refunds), over HTTP clients that time every call; and the owner of the store it buys from, who
/// refunds part of its orders.
/// </summary>
internal sealed class CardWallet : IDisposable
{
    /// <summary>What one top-up adds: as little as a purchase takes, so that the balance stays far from the card's maximum.</summary>
    public static readonly Money TopUpAmount = Money.Parse("0.10 EUR");

    /// <summary>What one refund gives back: half of an order (<see cref="LoadSystem.Price"/>), a partial refund.</summary>
    public static readonly Money RefundAmount = Money.Parse("0.05 EUR");

    /// <summary>The store owner's refund request (the store's admin API, which has the operator record it).</summary>
    public static readonly string RefundRequestPart = Workload.Part(Workload.Refund, "request");

    /// <summary>The card's sync that takes the refund as a CREDIT.</summary>
    public static readonly string RefundSyncPart = Workload.Part(Workload.Refund, "sync");

    /// <summary>Paid orders kept for refunds: each is refunded once, the oldest first; older ones are never refunded.</summary>
    private const int PaidOrdersKept = 16;

    // The authorizer's test card that it approves (docs/authorizer.md), with an expiry years ahead.
    private static readonly CardData s_creditCard = new("4242424242424242", DateTime.UtcNow.AddYears(3).ToString("MM/yy", System.Globalization.CultureInfo.InvariantCulture), "1234");

    /// <summary>The wallet's code for a purchase the person declined (docs/errors.md).</summary>
    private const string DeclinedCode = "purchase.declined";

    private readonly InProcessReader _reader;
    private readonly TimingHandler _operatorTiming;
    private readonly TimingHandler _storeTiming;
    private readonly HttpClient _operator;
    private readonly HttpClient _store;
    private readonly PurchaseFlow _flow;
    private readonly TopUpFlow _topUp;
    private readonly CardSyncFlow _sync;
    private readonly Queue<string> _paid = new();
    private readonly List<Guid> _acknowledged = [];
    private readonly FailoverClock? _clock;
    private readonly Workload.Mix _mix;
    private readonly PurchaseRequest _request;
    private readonly Latencies _latencies;
    private readonly Func<bool> _measuring;
    private readonly Prompt _prompt = new();

    public CardWallet(LoadSystem system, LoadSettings settings, int index, HttpMessageHandler connections, Latencies latencies, InFlight inFlight, Func<bool> measuring, FailoverClock? clock = null)
    {
        _latencies = latencies;
        _clock = clock;
        _measuring = measuring;
        // A chip's memory is its own: here in RAM, so that the disk the servers commit to does not
        // also flush every card's emulated EEPROM.
        var memory = new MemoryStream();
        memory.Write(File.ReadAllBytes(system.CardFiles[index]));
        _reader = new InProcessReader(EmulatedCard.Open(memory), ownsCard: true);
        _operatorTiming = new TimingHandler(TimingHandler.Operator, connections, latencies, inFlight, measuring);
        _storeTiming = new TimingHandler(TimingHandler.Store, connections, latencies, inFlight, measuring);
        // The connection pool is shared and outlives every wallet: neither client may dispose it.
        _operator = new HttpClient(_operatorTiming, disposeHandler: false) { BaseAddress = system.OperatorUrl };
        _store = new HttpClient(_storeTiming, disposeHandler: false) { BaseAddress = system.StoreUrl };
        _flow = new PurchaseFlow(_store, _operator, _reader, _prompt);
        var operatorApi = new OperatorApi(_operator);
        _topUp = new TopUpFlow(operatorApi, _reader, _prompt);
        _sync = new CardSyncFlow(operatorApi, _reader, _prompt);
        _mix = settings.Workload.Start(phase: index);
        var (storeId, sku) = system.Articles[index % system.Articles.Count];
        _request = new PurchaseRequest(sku, 1, storeId, settings.Profile);
    }

    /// <summary>A purchase up to the bill and the operator's round trip 1, then declined; true when it got that far.</summary>
    public async Task<bool> StartAndDeclineAsync()
    {
        _prompt.Decline = true;
        try
        {
            await _flow.RunAsync(_request).ConfigureAwait(false);
            return false;
        }
        catch (WalletException e) when (e.Code == DeclinedCode)
        {
            return true;
        }
        catch (Exception e) when (e is WalletException or HttpRequestException or TaskCanceledException or IOException)
        {
            return false;
        }
        finally
        {
            _prompt.Decline = false;
            _operatorTiming.PurchaseEnded();
        }
    }

    /// <summary>The settlements of this card's purchases that the wallet saw completed (ACN verified, receipt and goods fetched).</summary>
    public IReadOnlyList<Guid> Acknowledged => _acknowledged;

    /// <summary>Syncs until the card takes nothing more; how many settlements its greetings resolved and how many credits it took.</summary>
    public async Task<(int Resolved, int Credits)> SyncUntilSettledAsync()
    {
        var resolved = 0;
        var credits = 0;
        while (true)
        {
            var synced = await _sync.RunAsync(CancellationToken.None).ConfigureAwait(false);
            resolved += synced.Resolved.Count;
            credits += synced.Credits.Count;
            if (synced.Credits.Count == 0)
            {
                return (resolved, credits);
            }
        }
    }

    /// <summary>The card's balance in a currency, as the card says (GET DATA).</summary>
    public Money Balance(Currency currency)
    {
        var card = new WalletCard(_reader);
        card.Select();
        return card.Status().BalanceOf(currency) ?? Money.Zero(currency);
    }

    /// <summary>The workload's next operation (a purchase, a top-up or a refund); its kind, or null (and its error counted) when it did not complete.</summary>
    /// <param name="errors">Where a failure's code is counted.</param>
    /// <param name="due">When the operation was due (open loop): its latency counts from then.</param>
    /// <param name="cancellationToken">Stops the operation.</param>
    public async Task<string?> RunAsync(ConcurrentDictionary<string, long> errors, long? due, CancellationToken cancellationToken)
    {
        var started = due ?? Stopwatch.GetTimestamp();
        var kind = _mix.Next();
        if (kind == Workload.Refund && _paid.Count == 0)
        {
            // Nothing paid yet to refund (the wallet's first operations): it buys instead.
            kind = Workload.Purchase;
        }

        try
        {
            switch (kind)
            {
                case Workload.TopUp:
                    await _topUp.RunAsync(TopUpAmount, s_creditCard, cancellationToken).ConfigureAwait(false);
                    break;
                case Workload.Refund:
                    await RefundAsync(_paid.Dequeue(), cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    var paid = await _flow.RunAsync(_request, cancellationToken).ConfigureAwait(false);
                    _acknowledged.Add(paid.SettlementId);
                    _clock?.PurchaseCompleted(started, Stopwatch.GetTimestamp());
                    _paid.Enqueue(paid.OrderNo);
                    if (_paid.Count > PaidOrdersKept)
                    {
                        _paid.Dequeue();
                    }

                    break;
            }

            if (_measuring())
            {
                _latencies.Add(kind, Stopwatch.GetElapsedTime(started));
            }

            return kind;
        }
        catch (WalletException e)
        {
            var failed = Failed($"{kind}: {e.Code}");
            if (e.RetryAfter is { } retryAfter)
            {
                // Told when to try again (503 operator.busy during a failover), the person waits that
                // long before the next operation, as the wallet's message asks, instead of asking at once.
                await Task.Delay(retryAfter, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            return failed;
        }
        catch (RefusedException e)
        {
            return Failed($"{kind}: {e.Code}");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            return Failed($"{kind}: {e.GetType().Name}");
        }
        finally
        {
            _operatorTiming.PurchaseEnded();
        }

        string? Failed(string code)
        {
            errors.AddOrUpdate(code, 1, (_, n) => n + 1);
            _clock?.Failed(code, Stopwatch.GetTimestamp());
            return null;
        }
    }

    // The store owner refunds part of the order through the store's admin API, as the owner's own
    // tools would (the store has the operator record it); then the card's sync takes the refund as a
    // CREDIT. Each part is timed on its own: they are different parties' work, apart in time.
    private async Task RefundAsync(string orderNo, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/admin/refunds")
        {
            Content = JsonContent.Create(new { orderNo, amount = RefundAmount.ToString(), reason = "Load run: part of the order given back." }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", LoadSystem.StoreAdminToken);
        using var response = await _store.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var answer = await ReadObjectAsync(response, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            // The problem's code, or the status when the answer is no problem details.
            throw new RefusedException(Text(answer, "code") ?? $"http.{(int)response.StatusCode}");
        }

        if (!Guid.TryParse(Text(answer, "refundId"), out var refundId) || Text(answer, "state") != "owed")
        {
            throw new RefusedException("refund.answer_unexpected");
        }

        if (_measuring())
        {
            _latencies.Add(RefundRequestPart, Stopwatch.GetElapsedTime(started));
        }

        started = Stopwatch.GetTimestamp();
        var synced = await _sync.RunAsync(cancellationToken).ConfigureAwait(false);
        if (!synced.Credits.Any(c => c.Purpose == ValueUpdatePurposes.Refund && c.SourceId == refundId && c.Amount == RefundAmount))
        {
            throw new RefusedException("refund.not_credited");
        }

        if (_measuring())
        {
            _latencies.Add(RefundSyncPart, Stopwatch.GetElapsedTime(started));
        }
    }

    // An answer's JSON object, or null when its body is none.
    private static async Task<JsonElement?> ReadObjectAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var json = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken).ConfigureAwait(false);
            return json.ValueKind == JsonValueKind.Object ? json : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? Text(JsonElement? answer, string name) =>
        answer is { } json && json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public void Dispose()
    {
        _operator.Dispose();
        _store.Dispose();
        _reader.Dispose();
    }

    /// <summary>A party refused an operation outside the wallet's flows (the store owner's refund), with its problem code.</summary>
    private sealed class RefusedException(string code) : Exception($"Refused: {code}.")
    {
        public string Code { get; } = code;
    }

    /// <summary>The person who agrees to every bill and top-up (unless told to decline a bill), and watches nothing.</summary>
    private sealed class Prompt : ITopUpPrompt
    {
        public bool Decline { get; set; }

        public void Progress(string message)
        {
        }

        public void ShowEstimate(EstimateResponse estimate)
        {
        }

        public void ShowBill(Bill bill)
        {
        }

        public ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken) => ValueTask.FromResult(!Decline);

        public ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken) => ValueTask.FromResult(true);

        public T WhileCardWorks<T>(string message, Func<T> work) => work();
    }
}
