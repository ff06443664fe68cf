using System.Text.Json;
using System.Text.Json.Serialization;

namespace OpenPurse.Load;

/// <summary>What one load run measured: the setup, the throughput beside the signature bound, latencies, errors and memory.</summary>
/// <param name="Database">sqlite, postgresql or ha.</param>
/// <param name="Profile">signed or lean.</param>
/// <param name="Cards">Emulated cards, each with its own wallet buying one purchase after another: the concurrency.</param>
/// <param name="Stores">Member stores of the mall the cards buy from.</param>
/// <param name="Nodes">Operator nodes (behind the balancer when more than one).</param>
/// <param name="Cores">Logical processors of the machine (load generator, operator and store share them).</param>
/// <param name="Seconds">How long the measured load ran (after the warm-up).</param>
/// <param name="Completed">Purchases completed in that time (receipt verified, goods downloaded).</param>
/// <param name="PurchasesPerSecond">Completed ÷ Seconds.</param>
/// <param name="Bound">The signature bound measured before the load.</param>
/// <param name="RatioToBound">PurchasesPerSecond ÷ Bound.PurchasesPerSecond.</param>
/// <param name="Purchase">Latency of a whole purchase, catalog to download.</param>
/// <param name="Calls">Latency of each HTTP call, by method and route.</param>
/// <param name="Errors">Purchases that failed, by error code.</param>
/// <param name="Memory">The operator's memory beside the settlements in flight.</param>
/// <param name="StartupMilliseconds">Operator start-up: from starting its process to its first answered request.</param>
/// <param name="Cpu">Processor time per completed purchase, by party, over the measured phase.</param>
/// <param name="OfferedRate">Open loop: the purchases per second started on schedule; null for a closed loop.</param>
/// <param name="Kinds">Each kind of operation of the workload (purchases, top-ups, refunds): its share, how many completed, throughput and latency.</param>
/// <param name="Failover">The leader's fault in the middle of the load on the HA cluster and what it cost; null when there was none.</param>
/// <param name="Checks">The checks after the load, each as passed (a run whose check fails has no report: it fails).</param>
internal sealed record LoadReport(
    string Database,
    string Profile,
    int Cards,
    int Stores,
    int Nodes,
    int Cores,
    double Seconds,
    long Completed,
    double PurchasesPerSecond,
    SignatureBound Bound,
    double RatioToBound,
    LatencySummary Purchase,
    IReadOnlyList<LatencySummary> Calls,
    IReadOnlyDictionary<string, long> Errors,
    MemorySummary Memory,
    double StartupMilliseconds,
    CpuSummary Cpu,
    double? OfferedRate = null,
    IReadOnlyList<KindSummary>? Kinds = null,
    FailoverSummary? Failover = null,
    IReadOnlyList<string>? Checks = null)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}

/// <summary>Latency percentiles of one kind of request, in milliseconds.</summary>
internal sealed record LatencySummary(string Name, long Count, double P50, double P90, double P99, double Max, double P95 = 0);

/// <summary>One kind of operation of a workload, over the measured phase.</summary>
/// <param name="Kind">purchase, topup, refund.</param>
/// <param name="Share">Its share of the operations the wallets start.</param>
/// <param name="Completed">How many completed.</param>
/// <param name="PerSecond">Completed ÷ the measured seconds.</param>
/// <param name="Latency">Latency of the whole operation.</param>
/// <param name="Parts">
/// Latency of the operation's parts when they are different parties' work, each timed on its own:
/// a refund's request by the store owner (<c>refund: request</c>) and the card's sync that takes it
/// (<c>refund: sync</c>). Null for kinds timed only whole.
/// </param>
internal sealed record KindSummary(string Kind, double Share, long Completed, double PerSecond, LatencySummary Latency, IReadOnlyList<LatencySummary>? Parts = null);

/// <summary>
/// How many purchases per second the signature and MAC work of one purchase alone allows, on all
/// cores: every ES256 sign and verify that the wallet, store and operator do, and the card session
/// of both sides (key diversification, session keys, cryptograms, C-MAC, R-MAC, encryption).
/// </summary>
/// <param name="Signs">ES256 signatures per purchase.</param>
/// <param name="Verifies">ES256 verifications per purchase.</param>
/// <param name="CardSessions">Host-side card sessions the operator opens per purchase (each with its key diversification).</param>
/// <param name="PurchaseMicroseconds">The median time of one purchase's work on one core.</param>
/// <param name="PurchasesPerSecond">What all cores allow: Cores × 10⁶ ÷ PurchaseMicroseconds, measured with all cores busy.</param>
internal sealed record SignatureBound(int Signs, int Verifies, int CardSessions, double PurchaseMicroseconds, double PurchasesPerSecond);

/// <summary>The operator's memory (summed over nodes), two ways.</summary>
/// <param name="IdleBytes">Resident set after start-up and warm-up, before the load.</param>
/// <param name="LoadedBytes">The median resident set of the samples taken while the load ran.</param>
/// <param name="InFlight">The median number of settlements in flight (round trip 1 sent, round trip 2 not yet answered) in those samples.</param>
/// <param name="BytesPerInFlight">(LoadedBytes − IdleBytes) ÷ InFlight: the collector's growth under load, not what a settlement holds; null when nothing was in flight.</param>
/// <param name="Held">Settlements held open after the load: every card started one and stopped at the bill.</param>
/// <param name="HeapBeforeBytes">The managed heap after a full collection, before they were started.</param>
/// <param name="HeapHeldBytes">The same while they were held.</param>
/// <param name="HeapBytesPerHeld">(HeapHeldBytes − HeapBeforeBytes) ÷ Held: what one in-flight settlement costs the operator; null when none was held.</param>
internal sealed record MemorySummary(long IdleBytes, long LoadedBytes, double InFlight, double? BytesPerInFlight, int Held, long HeapBeforeBytes, long HeapHeldBytes, double? HeapBytesPerHeld);

/// <summary>Processor time (user and system) per completed purchase, in milliseconds: where the cores went.</summary>
/// <param name="Operator">All operator nodes together.</param>
/// <param name="Store">The mall.</param>
/// <param name="Wallets">The load generator: every wallet and its emulated card.</param>
/// <param name="Database">The PostgreSQL server's processes (on the HA cluster, every member's: the standbys' replay is the price of synchronous replication); 0 on SQLite, whose work is in the operator's.</param>
internal sealed record CpuSummary(double Operator, double Store, double Wallets, double Database);

/// <summary>A series of runs that differ in one setting (cards or nodes), for the scaling charts.</summary>
/// <param name="Axis">"cards" or "nodes".</param>
/// <param name="Runs">One report per value of the axis, and per database.</param>
internal sealed record ScalingSeries(string Axis, IReadOnlyList<LoadReport> Runs);
