using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using OpenPurse.CommandLine;
using OpenPurse.Load;
using OpenPurse.Protocol.Messages;
using Spectre.Console;

// openpurse-load: one run and its report; `sweep` for the scaling curves; `chart` to draw them. See README.md.
var database = new Option<string>("--database") { Description = "sqlite, postgresql (a private cluster is started) or ha (a private Patroni cluster: a primary and two standbys, one synchronous).", DefaultValueFactory = _ => "sqlite" };
database.AcceptOnlyFromAmong("sqlite", "postgresql", "ha");
var profile = new Option<string>("--profile") { Description = "signed (SIG2) or lean.", DefaultValueFactory = _ => "signed" };
profile.AcceptOnlyFromAmong("signed", "lean");
var cards = new Option<int>("--cards") { Description = "Emulated cards, each with its wallet buying one purchase after another.", DefaultValueFactory = _ => 64 };
var stores = new Option<int>("--stores") { Description = "Member stores of the mall.", DefaultValueFactory = _ => 4 };
var nodes = new Option<int>("--nodes") { Description = "Operator nodes; more than one needs PostgreSQL and HAProxy.", DefaultValueFactory = _ => 1 };
var purchases = new Option<long?>("--purchases") { Description = "Measure this many purchases (instead of --duration)." };
var duration = new Option<double>("--duration") { Description = "Seconds to measure.", DefaultValueFactory = _ => 10 };
var warmup = new Option<double>("--warmup") { Description = "Seconds of load before measuring: under full load the servers' JIT recompiles hot code for half a minute after start.", DefaultValueFactory = _ => 45 };
var rate = new Option<double?>("--rate") { Description = "Open loop: start this many purchases per second (latency counts from when each was due)." };
var hold = new Option<int>("--hold") { Description = "Settlements held open after the load for the operator's memory per in-flight settlement (cards beyond --cards are issued for it).", DefaultValueFactory = _ => 1000 };
var noBound = new Option<bool>("--no-bound") { Description = "Skip measuring the signature bound." };
var json = new Option<string?>("--json") { Description = "Also write the report (or the series) as JSON to this file." };
var topUps = new Option<double>("--topups") { Description = "The share of operations that are top-ups by credit card (0 to 0.9; the credit authorizer runs too), the rest purchases.", DefaultValueFactory = _ => 0 };
var failover = new Option<string?>("--failover") { Description = "With --database ha: the leader's machine dies (kill) or its network is cut (cut) during the measured phase." };
failover.AcceptOnlyFromAmong(FailoverPlan.KillKind, FailoverPlan.CutKind);
var failoverAt = new Option<double?>("--failover-at") { Description = "Seconds into the measured phase when the fault comes; a third of --duration by default." };
var refunds = new Option<double>("--refunds") { Description = "The share of operations that are a store owner's refund of part of an order the card paid, then the card's sync that takes it (0 to 0.5), the rest purchases.", DefaultValueFactory = _ => 0 };

var root = new RootCommand("Many emulated cards and their wallets buying from an operator and a mall over real HTTP, beside the signature bound.")
{
    database, profile, cards, stores, nodes, purchases, duration, warmup, rate, hold, noBound, json, topUps, refunds, failover, failoverAt,
};
root.SetAction(async (parse, cancellationToken) =>
{
    var share = parse.GetValue(topUps);
    var refundShare = parse.GetValue(refunds);
    // Each refund gives back part of one order the card paid, once, and a wallet with no order left to refund buys
    // instead: with more refunds than purchases the share asked for would not be the share run.
    string? badShare = (share, refundShare) switch
    {
        ( < 0 or > 0.9, _) => "--topups is a share from 0 to 0.9.",
        (_, < 0 or > 0.5) => "--refunds is a share from 0 to 0.5.",
        _ when share + refundShare > 0.9 => "--topups and --refunds together are at most 0.9: a tenth of the operations at least are purchases.",
        _ when (2 * refundShare) + share > 1 + 1e-9 => "--refunds is at most the purchases' share (1 - topups - refunds): each refund gives back part of one paid order.",
        _ => null,
    };
    if (badShare is not null)
    {
        AnsiConsole.MarkupLineInterpolated($"[red]{badShare}[/]");
        return 2;
    }

    var fault = parse.GetValue(failover) is { } kind
        ? new FailoverPlan(kind, TimeSpan.FromSeconds(parse.GetValue(failoverAt) ?? parse.GetValue(duration) / 3))
        : null;
    if (fault is null && parse.GetValue(failoverAt) is not null)
    {
        AnsiConsole.MarkupLine("[red]--failover-at needs --failover.[/]");
        return 2;
    }

    var settings = Settings(parse, parse.GetValue(database)!, parse.GetValue(cards), parse.GetValue(nodes)) with { Hold = parse.GetValue(hold), Mix = Workload.Mixed(share, refundShare), Failover = fault };
    if (!Validate(settings))
    {
        return 2;
    }

    LoadReport report;
    try
    {
        report = await LoadRun.RunAsync(settings, AnsiConsole.Console, cancellationToken);
    }
    catch (Exception e) when (e is InvalidOperationException or TimeoutException)
    {
        // A check after the load that did not hold, or a failover that did not come: say which.
        AnsiConsole.MarkupLineInterpolated($"[red]{e.Message}[/]");
        return 1;
    }

    Print(report);
    await WriteJsonAsync(parse.GetValue(json), report, cancellationToken);
    return Succeeded(report) ? 0 : 1;
});

var axis = new Option<string>("--axis") { Description = "cards or nodes: what the series varies.", DefaultValueFactory = _ => "cards" };
axis.AcceptOnlyFromAmong("cards", "nodes");
var values = new Option<string>("--values") { Description = "The axis' values, comma-separated.", DefaultValueFactory = _ => "1,10,100,1000" };
var databases = new Option<string>("--databases") { Description = "Databases to run each value on, comma-separated.", DefaultValueFactory = _ => "sqlite,postgresql" };
var charts = new Option<string?>("--charts") { Description = "Draw the charts (PNG) into this directory." };
var sweep = new Command("sweep", "Runs the load once per value of cards or nodes (and per database) and keeps the series for the charts.")
{
    axis, values, databases, profile, cards, stores, nodes, duration, warmup, json, charts,
};
sweep.SetAction(async (parse, cancellationToken) =>
{
    var axisName = parse.GetValue(axis)!;
    var texts = parse.GetValue(values)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    var points = texts.Select(v => int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var point) ? point : -1).ToArray();
    if (points.Length == 0 || points.Any(p => p < 1))
    {
        await Console.Error.WriteLineAsync($"openpurse-load: --values must be whole numbers from 1, comma-separated, not '{parse.GetValue(values)}'.");
        return 2;
    }

    var runs = new List<LoadReport>();
    foreach (var db in parse.GetValue(databases)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
    {
        foreach (var point in points)
        {
            var settings = Settings(parse, db, axisName == "cards" ? point : parse.GetValue(cards), axisName == "nodes" ? point : parse.GetValue(nodes));
            if (!Validate(settings))
            {
                return 2;
            }

            AnsiConsole.MarkupLineInterpolated($"[bold]{db}, {axisName} = {point}[/]");
            var report = await LoadRun.RunAsync(settings, AnsiConsole.Console, cancellationToken);
            Print(report);
            runs.Add(report);
        }
    }

    var series = new ScalingSeries(axisName, runs);
    await WriteJsonAsync(parse.GetValue(json), series, cancellationToken);
    if (parse.GetValue(charts) is { } directory)
    {
        foreach (var path in Charts.Render([series], directory))
        {
            AnsiConsole.MarkupLineInterpolated($"[grey]•[/] {path}");
        }
    }

    return runs.All(Succeeded) ? 0 : 1;
});
root.Subcommands.Add(sweep);

var files = new Argument<string[]>("series") { Description = "JSON files written by sweep --json." };
var output = new Option<string>("--out") { Description = "Where the PNG charts go.", DefaultValueFactory = _ => "." };
var chart = new Command("chart", "Draws the scaling charts from series written by sweep.") { files, output };
chart.SetAction(async (parse, cancellationToken) =>
{
    var series = new List<ScalingSeries>();
    foreach (var file in parse.GetValue(files)!)
    {
        await using var stream = File.OpenRead(file);
        series.Add(await JsonSerializer.DeserializeAsync<ScalingSeries>(stream, LoadReport.Json, cancellationToken)
            ?? throw new InvalidDataException($"{file} holds no series."));
    }

    foreach (var path in Charts.Render(series, parse.GetValue(output)!))
    {
        AnsiConsole.MarkupLineInterpolated($"[grey]•[/] {path}");
    }

    return 0;
});
root.Subcommands.Add(chart);

return await CommandLines.InvokeAsync(root.WithExitCodes("0 every operation completed", "1 some failed, or no purchase completed", "2 bad usage"), args, Console.Out, Console.Error);

LoadSettings Settings(ParseResult parse, string db, int cardCount, int nodeCount) => new(
    db,
    parse.GetValue(profile) == "lean" ? SettlementProfile.Lean : SettlementProfile.Signed,
    cardCount,
    parse.GetValue(stores),
    nodeCount,
    parse.GetValue(purchases),
    TimeSpan.FromSeconds(parse.GetValue(duration)),
    TimeSpan.FromSeconds(parse.GetValue(warmup)),
    MeasureBound: !parse.GetValue(noBound),
    Rate: parse.GetValue(rate));

static bool Validate(LoadSettings settings)
{
    string? problem = settings switch
    {
        { Cards: < 1 or > 10_000 } => "--cards is 1 to 10000.",
        { Stores: < 1 or > 100 } => "--stores is 1 to 100.",
        { Nodes: < 1 or > 8 } => "--nodes is 1 to 8.",
        { Nodes: > 1, Database: "sqlite" } => "Several operator nodes share one registry: use --database postgresql or ha.",
        { Failover: not null, Database: not "ha" } => "--failover needs the HA cluster: --database ha.",
        { Failover: not null, Purchases: not null } => "--failover needs a --duration to come in, not --purchases.",
        { Failover.At.TotalSeconds: var at } when at < 0 || at >= settings.Duration.TotalSeconds => "--failover-at is from 0 to less than --duration.",
        // The exact books after a failover count the registry's settlements: a top-up or refund
        // whose answer was lost would be counted by neither side.
        { Failover: not null } when settings.Workload.Has(Workload.TopUp) || settings.Workload.Has(Workload.Refund) => "--failover runs purchases only: no --topups or --refunds.",
        { Purchases: < 1 } => "--purchases is at least 1.",
        { Duration.TotalSeconds: <= 0 } => "--duration is more than 0 seconds.",
        { Rate: <= 0 } => "--rate is more than 0 purchases per second.",
        { Hold: < 0 or > 10_000 } => "--hold is 0 to 10000.",
        _ => null,
    };
    if (problem is not null)
    {
        AnsiConsole.MarkupLineInterpolated($"[red]{problem}[/]");
    }

    return problem is null;
}

// Every operation completed, and there were purchases. With a failover, operations fail while the
// cluster has no primary: the run succeeds when a new leader came, purchases completed after the
// fault, and the checks after the load held (a check that fails throws, and the run exits 1).
static bool Succeeded(LoadReport report) => report.Completed > 0 && (report.Failover is { } failover
    ? failover.NewLeader is not null && failover.FirstPurchaseSeconds is not null && failover.RejoinSeconds is not null
    : report.Errors.Count == 0);

static void Print(LoadReport report)
{
    var summary = new Table().Border(TableBorder.Rounded).Title($"{report.Database}, {report.Profile}, {report.Cards} cards, {report.Stores} stores, {report.Nodes} node(s), {report.Cores} cores")
        .AddColumns("measure", "value");
    summary.AddRow("purchases completed", $"{report.Completed} in {report.Seconds:F1} s" + (report.OfferedRate is { } offered ? $" (open loop, {offered:F0} started per second)" : ""));
    summary.AddRow("throughput", $"[bold]{report.PurchasesPerSecond:F1} purchases/s[/]");
    summary.AddRow("signature bound", report.Bound.PurchasesPerSecond > 0 ? $"{report.Bound.PurchasesPerSecond:F1} purchases/s ({report.Bound.Signs} signs, {report.Bound.Verifies} verifies, card sessions; {report.Bound.PurchaseMicroseconds:F0} µs per purchase on one core)" : "not measured");
    summary.AddRow("ratio to the bound", report.Bound.PurchasesPerSecond > 0 ? $"[bold]{report.RatioToBound:P1}[/]" : "–");
    summary.AddRow("whole purchase p50 / p90 / p99 / max", $"{report.Purchase.P50:F1} / {report.Purchase.P90:F1} / {report.Purchase.P99:F1} / {report.Purchase.Max:F1} ms");
    summary.AddRow("operator memory idle → under load", $"{report.Memory.IdleBytes / 1048576.0:F1} MiB → {report.Memory.LoadedBytes / 1048576.0:F1} MiB with {report.Memory.InFlight:F0} settlements in flight");
    summary.AddRow("operator resident growth per settlement in flight", report.Memory.BytesPerInFlight is { } perSettlement ? $"{perSettlement / 1024:F1} KiB (the collector's growth under load)" : "–");
    summary.AddRow("operator heap per held settlement", report.Memory.HeapBytesPerHeld is { } perHeld
        ? $"[bold]{perHeld / 1024:F2} KiB[/] ({report.Memory.Held} held; heap after a full collection {report.Memory.HeapBeforeBytes / 1048576.0:F2} → {report.Memory.HeapHeldBytes / 1048576.0:F2} MiB)"
        : "–");
    summary.AddRow("processor time per purchase", $"operator {report.Cpu.Operator:F1} ms, store {report.Cpu.Store:F1} ms, wallets and cards {report.Cpu.Wallets:F1} ms" + report.Database switch
    {
        "postgresql" => $", PostgreSQL {report.Cpu.Database:F1} ms",
        // A member that died took its processor time with it: the sum after is not comparable.
        "ha" when report.Failover is not null => ", PostgreSQL not measured (a member died)",
        "ha" => $", PostgreSQL (all three members) {report.Cpu.Database:F1} ms",
        _ => "",
    });
    summary.AddRow("operator start-up to first answer", $"{report.StartupMilliseconds:F0} ms");
    summary.AddRow("errors", report.Errors.Count == 0 ? "none" : string.Join(", ", report.Errors.Select(e => $"{e.Key}: {e.Value}")));
    if (report.Failover is { } failover)
    {
        static string Seconds(double? value) => value is { } s ? $"{s:F1} s" : "[red]never[/]";
        static string Counts(IReadOnlyDictionary<string, long> counts) => counts.Count == 0 ? "none" : Markup.Escape(string.Join(", ", counts.Select(e => $"{e.Key}: {e.Value}")));
        summary.AddRow("failover", $"{failover.Kind} of the leader {failover.OldLeader} at {failover.AtSeconds:F1} s; new leader {failover.NewLeader ?? "none"}");
        summary.AddRow("fault → new leader", Seconds(failover.LeaderSeconds));
        summary.AddRow("fault → first purchase started after it completed", $"[bold]{Seconds(failover.FirstPurchaseSeconds)}[/]");
        summary.AddRow("fault → old leader a standby again", Seconds(failover.RejoinSeconds));
        summary.AddRow("refused or failed during the failover", Counts(failover.DuringErrors));
        summary.AddRow("failed in the whole run", Counts(failover.RunErrors));
        summary.AddRow("operator's answers to a registry read during it", Counts(failover.Probe));
    }

    foreach (var check in report.Checks ?? [])
    {
        summary.AddRow("check", $"[green]✓[/] {Markup.Escape(check)}");
    }

    AnsiConsole.Write(summary);

    if (report.Kinds is { Count: > 1 } kinds)
    {
        var mix = new Table().Border(TableBorder.Simple).AddColumns("operation", "share", "completed", "per second", "p50 ms", "p95 ms", "p99 ms", "max ms");
        foreach (var kind in kinds)
        {
            mix.AddRow(kind.Kind, $"{kind.Share:P0}", $"{kind.Completed}", $"{kind.PerSecond:F1}", $"{kind.Latency.P50:F1}", $"{kind.Latency.P95:F1}", $"{kind.Latency.P99:F1}", $"{kind.Latency.Max:F1}");
            foreach (var part in kind.Parts ?? [])
            {
                // Its part's own name under the kind's: "refund: sync" is shown as "  sync".
                mix.AddRow($"  {Markup.Escape(part.Name[(part.Name.IndexOf(": ", StringComparison.Ordinal) + 2)..])}", "", $"{part.Count}", "", $"{part.P50:F1}", $"{part.P95:F1}", $"{part.P99:F1}", $"{part.Max:F1}");
            }
        }

        AnsiConsole.Write(mix);
    }

    var calls = new Table().Border(TableBorder.Simple).AddColumns("call", "count", "p50 ms", "p90 ms", "p99 ms", "max ms");
    foreach (var call in report.Calls)
    {
        calls.AddRow(Markup.Escape(call.Name), $"{call.Count}", $"{call.P50:F2}", $"{call.P90:F2}", $"{call.P99:F2}", $"{call.Max:F2}");
    }

    AnsiConsole.Write(calls);
}

static async Task WriteJsonAsync<T>(string? path, T value, CancellationToken cancellationToken)
{
    if (path is null)
    {
        return;
    }

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    await using var stream = File.Create(path);
    await JsonSerializer.SerializeAsync(stream, value, LoadReport.Json, cancellationToken);
}
