using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Authorizer;
using OpenPurse.Card;
using OpenPurse.Demo;
using OpenPurse.Hosting;
using OpenPurse.Operator;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store;
using OpenPurse.Store.Keys;
using OpenPurse.Store.Operator;
using OpenPurse.Store.Orders;
using OpenPurse.Testing;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>The calls a fault can name: the wallet's, the operator's deliveries to the store and calls to the credit authorizer, and the store's calls to the operator.</summary>
internal enum Call
{
    None,
    Rt1,
    Rt2,
    OperatorKeys,
    StoreKeys,
    Sync,
    CreditCompletion,
    Catalog,
    Estimate,
    Order,
    StoreCompletion,
    Download,
    AcnDelivery,
    VoidDelivery,
    TopUp,
    TopUpCompletion,
    AuthorizerKeys,
    Authorize,
    Capture,
    VoidAuthorization,
    Transfer,
    TransferCompletion,
    CashOut,
    CashOutCompletion,

    /// <summary>The store's signed refund to the operator (<c>POST /v1/refunds</c>).</summary>
    Refund,
}

/// <summary>Which connection an HTTP handler sits on.</summary>
internal enum Link
{
    WalletToOperator,
    WalletToStore,

    /// <summary>The operator's outgoing calls: to the stores, and to the credit authorizer.</summary>
    OperatorToStore,
    StoreToOperator,
}

/// <summary>What one planned fault does.</summary>
internal enum FaultKind
{
    /// <summary>The request never leaves: the client sees a broken connection.</summary>
    DropRequest,

    /// <summary>The receiver handles the request; its answer is lost on the way back.</summary>
    LoseAnswer,

    /// <summary>The operator restarts (new process state, same data, new port) before the request goes out.</summary>
    RestartBefore,

    /// <summary>The operator handles the request, then restarts before the answer is passed on.</summary>
    RestartAfter,

    /// <summary>The wallet stalls past the settlement timeout before sending the request.</summary>
    Stall,

    /// <summary>The card leaves the reader before the command reaches it.</summary>
    PullBefore,

    /// <summary>The card runs the command, then leaves the reader: its answer is lost.</summary>
    PullAfter,

    /// <summary>The card loses power after the first <see cref="PlannedFault.TearAt"/> bytes of the command's memory write.</summary>
    Tear,

    /// <summary>The wallet stops dead at a step of its flow (the process dies there).</summary>
    GiveUp,

    /// <summary>The person declines at the confirmation.</summary>
    Decline,

    /// <summary>The registry's primary dies (its Patroni and PostgreSQL at once) before the request goes out.</summary>
    KillPrimaryBefore,

    /// <summary>The operator handles the request, then the registry's primary dies before the answer is passed on.</summary>
    KillPrimaryAfter,
}

/// <summary>
/// Faults of the registry's database itself, beyond the operator's: the highly available variant
/// kills its primary. The schedule is drawn from the seed; the cluster heals in the background.
/// </summary>
internal interface IRegistryFaults
{
    /// <summary>Draws the schedule for a run of <paramref name="operations"/> operations.</summary>
    void Schedule(int seed, int operations);

    /// <summary>
    /// The kill due at this operation, on one of its <paramref name="calls"/>, or null; when one is
    /// due it first waits until the cluster healed from the last.
    /// </summary>
    Task<PlannedFault?> DrawAsync(int operation, IReadOnlyList<Call> calls);

    /// <summary>Fires a kill drawn here: the primary dies, and the cluster starts to heal.</summary>
    Task KillPrimaryAsync(PlannedFault fault);

    /// <summary>Until a primary takes writes again (at once when none was killed).</summary>
    Task LeaderAsync();

    /// <summary>Until the cluster has a leader and every killed member streams from it again.</summary>
    Task HealedAsync();

    /// <summary>What was killed, when, and how long the cluster took to heal: for the summary.</summary>
    string Report();
}

/// <summary>One fault of a purchase's (or a sync's) schedule, fired by the first event it names.</summary>
internal sealed class PlannedFault(FaultKind kind)
{
    public FaultKind Kind => kind;

    /// <summary>For the HTTP kinds: the call.</summary>
    public Call Call { get; init; }

    /// <summary>Which occurrence of the call or card command fires it (1 = the first).</summary>
    public int Occurrence { get; init; } = 1;

    /// <summary>For the card kinds: the instruction byte.</summary>
    public byte Instruction { get; init; }

    /// <summary>For <see cref="FaultKind.Tear"/>: how many bytes of the write reach the memory.</summary>
    public int TearAt { get; init; }

    /// <summary>For <see cref="FaultKind.GiveUp"/>: the step of the flow (1 = the first thing it shows).</summary>
    public int Step { get; init; }

    public bool Fired { get; set; }

    public bool IsHttp => kind is FaultKind.DropRequest or FaultKind.LoseAnswer or FaultKind.RestartBefore or FaultKind.RestartAfter or FaultKind.Stall
        or FaultKind.KillPrimaryBefore or FaultKind.KillPrimaryAfter;

    public bool IsCard => kind is FaultKind.PullBefore or FaultKind.PullAfter or FaultKind.Tear;

    /// <summary>The fault's family, for the summary: kind and target, without occurrence or offset.</summary>
    public string Family => kind switch
    {
        _ when IsHttp => $"{Kebab(kind)} {Kebab(Call)}",
        _ when IsCard => $"{Kebab(kind)} {InstructionName(Instruction)}",
        _ => Kebab(kind),
    };

    public override string ToString() => kind switch
    {
        _ when IsHttp => $"{Family}#{Occurrence}",
        FaultKind.Tear => $"{Family}#{Occurrence}@{TearAt}",
        _ when IsCard => $"{Family}#{Occurrence}",
        FaultKind.GiveUp => $"{Family}@step{Step}",
        _ => Family,
    };

    public static string InstructionName(byte instruction) => instruction switch
    {
        PurseInstruction.Select => "SELECT",
        PurseInstruction.InitializeUpdate => "INITIALIZE-UPDATE",
        PurseInstruction.ExternalAuthenticate => "EXTERNAL-AUTHENTICATE",
        PurseInstruction.Debit => "DEBIT",
        PurseInstruction.Credit => "CREDIT",
        PurseInstruction.GetData => "GET-DATA",
        _ => $"INS-{instruction:X2}",
    };

    private static string Kebab<T>(T value)
        where T : struct, Enum => Regex.Replace(value.ToString(), "(?<=[a-z0-9])([A-Z])", "-$1").ToLowerInvariant();
}

/// <summary>
/// The faults of one purchase or sync, and the counting that decides when each fires: the n-th
/// occurrence of a call or card command, the n-th step of the flow. Thread-safe: the wallet fetches
/// keys while the store makes the bill, and the sweeper delivers in the background.
/// </summary>
internal sealed class FaultPlan(IReadOnlyList<PlannedFault> faults)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<Call, int> _calls = [];
    private readonly Dictionary<byte, int> _commands = [];
    private int _steps;

    public static FaultPlan None { get; } = new([]);

    public IReadOnlyList<PlannedFault> Faults => faults;

    public IReadOnlyList<PlannedFault> FiredFaults
    {
        get
        {
            lock (_lock)
            {
                return [.. faults.Where(f => f.Fired)];
            }
        }
    }

    /// <summary>The faults that fire on this call (now marked fired).</summary>
    public List<PlannedFault> OnCall(Call call)
    {
        lock (_lock)
        {
            var n = _calls[call] = _calls.GetValueOrDefault(call) + 1;
            return Take(f => f.IsHttp && f.Call == call && f.Occurrence == n);
        }
    }

    /// <summary>The faults that fire on this card command (now marked fired).</summary>
    public List<PlannedFault> OnCommand(byte instruction)
    {
        lock (_lock)
        {
            var n = _commands[instruction] = _commands.GetValueOrDefault(instruction) + 1;
            return Take(f => f.IsCard && f.Instruction == instruction && f.Occurrence == n);
        }
    }

    /// <summary>The give-up that fires at the flow's next step, if any.</summary>
    public PlannedFault? OnStep()
    {
        lock (_lock)
        {
            var n = ++_steps;
            return Take(f => f.Kind == FaultKind.GiveUp && f.Step == n).FirstOrDefault();
        }
    }

    /// <summary>Whether the person declines at the confirmation.</summary>
    public bool OnConfirm()
    {
        lock (_lock)
        {
            return Take(f => f.Kind == FaultKind.Decline).Count > 0;
        }
    }

    private List<PlannedFault> Take(Func<PlannedFault, bool> matches)
    {
        var fired = faults.Where(f => !f.Fired && matches(f)).ToList();
        foreach (var fault in fired)
        {
            fault.Fired = true;
        }

        return fired;
    }
}

/// <summary>The wallet process died at a step of its flow: nothing after it runs.</summary>
internal sealed class WalletGaveUpException : Exception
{
    public WalletGaveUpException()
    {
    }

    public WalletGaveUpException(string message)
        : base(message)
    {
    }

    public WalletGaveUpException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The network as the run's schedule wants it, on one link: drops a request, loses an answer,
/// restarts the operator before or after a call, or stalls the wallet past the settlement timeout.
/// On the links to the operator it also sends each request to wherever the operator listens now
/// (it moves to a new port at every restart), so the clients' base address never changes.
/// </summary>
internal sealed partial class FaultyHttpHandler(InProcessSystem system, Link link) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = Classify(link, request.Method, request.RequestUri!.AbsolutePath);
        var faults = call == Call.None ? [] : system.Plan.OnCall(call);
        foreach (var fault in faults)
        {
            switch (fault.Kind)
            {
                case FaultKind.Stall:
                    await Task.Delay(system.StallTime, CancellationToken.None);
                    break;
                case FaultKind.RestartBefore:
                    await system.RestartOperatorAsync();
                    break;
                case FaultKind.KillPrimaryBefore:
                    await system.KillPrimaryAsync(fault);
                    break;
            }
        }

        if (faults.Any(f => f.Kind == FaultKind.DropRequest))
        {
            throw new HttpRequestException($"Fault: the {call} request was dropped.");
        }

        if (link is Link.WalletToOperator or Link.StoreToOperator)
        {
            var target = system.OperatorUrl;
            request.RequestUri = new UriBuilder(request.RequestUri) { Scheme = target.Scheme, Host = target.Host, Port = target.Port }.Uri;
        }

        var response = await base.SendAsync(request, cancellationToken);
        if (faults.Any(f => f.Kind is FaultKind.RestartAfter or FaultKind.LoseAnswer or FaultKind.KillPrimaryAfter))
        {
            // The receiver has answered in full (minimal APIs write after the handler returns).
            await response.Content.LoadIntoBufferAsync(cancellationToken);
        }

        foreach (var kill in faults.Where(f => f.Kind == FaultKind.KillPrimaryAfter))
        {
            await system.KillPrimaryAsync(kill);
        }

        if (faults.Any(f => f.Kind == FaultKind.RestartAfter))
        {
            await system.RestartOperatorAsync();
        }

        if (faults.Any(f => f.Kind == FaultKind.LoseAnswer))
        {
            response.Dispose();
            throw new HttpRequestException($"Fault: the answer to the {call} request was lost.");
        }

        return response;
    }

    private static Call Classify(Link link, HttpMethod method, string path) => (link, method.Method, path) switch
    {
        (Link.WalletToOperator, "POST", "/v1/settlements") => Call.Rt1,
        (Link.WalletToOperator, "POST", _) when Rt2Path().IsMatch(path) => Call.Rt2,
        (Link.WalletToOperator, "GET", "/.well-known/jwks.json") => Call.OperatorKeys,
        (Link.WalletToOperator, "GET", _) when StoreKeysPath().IsMatch(path) => Call.StoreKeys,
        (Link.WalletToOperator, "POST", "/v1/cards/sync") => Call.Sync,
        (Link.WalletToOperator, "POST", _) when CreditCompletionPath().IsMatch(path) => Call.CreditCompletion,
        (Link.WalletToStore, "GET", "/v1/catalog") => Call.Catalog,
        (Link.WalletToStore, "POST", "/v1/estimates") => Call.Estimate,
        (Link.WalletToStore, "POST", "/v1/orders") => Call.Order,
        (Link.WalletToStore, "POST", _) when StoreCompletionPath().IsMatch(path) => Call.StoreCompletion,
        (Link.WalletToStore, "GET", _) when DownloadPath().IsMatch(path) => Call.Download,
        (Link.OperatorToStore, "POST", _) when path.EndsWith("/v1/operator/completions", StringComparison.Ordinal) => Call.AcnDelivery,
        (Link.OperatorToStore, "POST", _) when path.EndsWith("/v1/operator/voids", StringComparison.Ordinal) => Call.VoidDelivery,
        (Link.WalletToOperator, "POST", "/v1/topups") => Call.TopUp,
        (Link.WalletToOperator, "POST", _) when TopUpCompletionPath().IsMatch(path) => Call.TopUpCompletion,
        (Link.WalletToOperator, "GET", "/v1/topups/authorizer-keys") => Call.AuthorizerKeys,
        (Link.OperatorToStore, "POST", "/v1/authorizations") => Call.Authorize,
        (Link.OperatorToStore, "POST", _) when AuthorizationPath().IsMatch(path) && path.EndsWith("/capture", StringComparison.Ordinal) => Call.Capture,
        (Link.OperatorToStore, "POST", _) when AuthorizationPath().IsMatch(path) && path.EndsWith("/void", StringComparison.Ordinal) => Call.VoidAuthorization,
        (Link.WalletToOperator, "POST", "/v1/transfers") => Call.Transfer,
        (Link.WalletToOperator, "POST", _) when TransferCompletionPath().IsMatch(path) => Call.TransferCompletion,
        (Link.WalletToOperator, "POST", "/v1/cashouts") => Call.CashOut,
        (Link.WalletToOperator, "POST", _) when CashOutCompletionPath().IsMatch(path) => Call.CashOutCompletion,
        (Link.StoreToOperator, "POST", "/v1/refunds") => Call.Refund,
        _ => Call.None,
    };

    [GeneratedRegex("^/v1/settlements/[^/]+/completion$")]
    private static partial Regex Rt2Path();

    [GeneratedRegex("^/v1/stores/[^/]+/jwks$")]
    private static partial Regex StoreKeysPath();

    [GeneratedRegex("^/v1/cards/credits/[^/]+/completion$")]
    private static partial Regex CreditCompletionPath();

    [GeneratedRegex("^/v1/orders/[^/]+/completion$")]
    private static partial Regex StoreCompletionPath();

    [GeneratedRegex("^/v1/orders/[^/]+/download$")]
    private static partial Regex DownloadPath();

    [GeneratedRegex("^/v1/topups/[^/]+/completion$")]
    private static partial Regex TopUpCompletionPath();

    [GeneratedRegex("^/v1/authorizations/[^/]+/(capture|void)$")]
    private static partial Regex AuthorizationPath();

    [GeneratedRegex("^/v1/transfers/[^/]+/completion$")]
    private static partial Regex TransferCompletionPath();

    [GeneratedRegex("^/v1/cashouts/[^/]+/completion$")]
    private static partial Regex CashOutCompletionPath();
}

/// <summary>
/// A reader holding one issued card whose memory file is opened over a stream this test controls:
/// it can pull the card before or after a command (the card loses power: its session is gone, its
/// memory stays), or cut the power after a given number of bytes of the command's memory write, as
/// OpenPurse.Card.Tests' TearingTest does; the card then comes back from its file.
/// </summary>
internal sealed class CardSlot : ICardReader, IDisposable
{
    private readonly Func<FaultPlan> _plan;
    private readonly Lock _lock = new();
    private TearingStream _stream = null!;
    private EmulatedCard _card = null!;

    public CardSlot(string path, CardId cardId, Money load, Func<FaultPlan> plan)
    {
        Path = path;
        CardId = cardId;
        Load = load;
        _plan = plan;
        PowerUp();
    }

    public string Path { get; }

    public CardId CardId { get; }

    /// <summary>What the issuing station loaded.</summary>
    public Money Load { get; }

    /// <summary>Bytes one memory write writes: the file is two slots (docs/card.md, "Memory and anti-tearing").</summary>
    public int SlotLength => checked((int)(new FileInfo(Path).Length / 2));

    public string Name => $"Faulty reader (card {CardId.Masked})";

    public ResponseApdu Transmit(CommandApdu command)
    {
        ArgumentNullException.ThrowIfNull(command);
        lock (_lock)
        {
            var faults = _plan().OnCommand(command.Ins);
            var name = PlannedFault.InstructionName(command.Ins);
            if (faults.Any(f => f.Kind == FaultKind.PullBefore))
            {
                PowerCycle();
                throw new CardRemovedException($"Fault: the card was pulled before {name}.");
            }

            var tear = faults.FirstOrDefault(f => f.Kind == FaultKind.Tear);
            if (tear is not null)
            {
                _stream.Budget = tear.TearAt;
            }

            ResponseApdu answer;
            try
            {
                answer = ResponseApdu.Parse(_card.Transmit(command.ToBytes()));
            }
            finally
            {
                if (tear is not null)
                {
                    PowerCycle();
                }
            }

            if (tear is not null)
            {
                throw new CardRemovedException($"Fault: the card lost power after {tear.TearAt} bytes of {name}'s write.");
            }

            if (faults.Any(f => f.Kind == FaultKind.PullAfter))
            {
                PowerCycle();
                throw new CardRemovedException($"Fault: the card was pulled after {name}.");
            }

            return answer;
        }
    }

    public void Dispose() => _card.Dispose();

    private void PowerCycle()
    {
        _card.Dispose();
        PowerUp();
    }

    private void PowerUp()
    {
        _stream = new TearingStream(new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.None));
        try
        {
            _card = EmulatedCard.Open(_stream);
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

}

/// <summary>The person, approving everything, unless the schedule has the wallet die at a step or the person decline.</summary>
internal sealed class FaultyPrompt(FaultPlan plan) : ITopUpPrompt, IDecreasePrompt
{
    /// <summary>The last bill shown: the order the purchase was about.</summary>
    public Bill? Bill { get; private set; }

    public void Progress(string message) => Step("progress: " + message);

    public void ShowEstimate(EstimateResponse estimate) => Step("estimate shown");

    public void ShowBill(Bill bill)
    {
        Bill = bill;
        Step("bill shown");
    }

    public ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken)
    {
        Step("confirmation");
        return ValueTask.FromResult(!plan.OnConfirm());
    }

    public ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken)
    {
        Step("top-up confirmation");
        return ValueTask.FromResult(!plan.OnConfirm());
    }

    public bool ConfirmDecrease(DecreaseConfirmation confirmation)
    {
        Step("decrease confirmation");
        return !plan.OnConfirm();
    }

    public T WhileCardWorks<T>(string message, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Step("before card work: " + message);
        var result = work();
        Step("after card work: " + message);
        return result;
    }

    private void Step(string what)
    {
        if (plan.OnStep() is { } fault)
        {
            throw new WalletGaveUpException($"Fault: the wallet died at step {fault.Step} ({what}).");
        }
    }
}

/// <summary>A refund as the store's database holds it.</summary>
internal sealed class StoreRefundRecord
{
    public required string RefundId { get; init; }

    public required string OrderNo { get; init; }

    public required long AmountMinor { get; init; }

    public string? Reason { get; init; }

    /// <summary><c>requested</c>, <c>owed</c>, <c>credited</c> or <c>refused</c>.</summary>
    public required string State { get; init; }
}

/// <summary>One authorization as the credit authorizer recorded it; <see cref="Reference"/> is the operator's top-up id.</summary>
internal sealed record AuthorizerRecord
{
    public required string Id { get; init; }

    public required string Reference { get; init; }

    public required string Status { get; init; }

    public required long AmountMinor { get; init; }

    public long? CapturedMinor { get; init; }

    public string? CapturedAt { get; init; }

    public string? VoidedAt { get; init; }
}

/// <summary>The servers' log: warnings counted by category, errors kept for the report.</summary>
internal sealed class ServerLog : ILoggerProvider
{
    public ConcurrentQueue<string> Errors { get; } = new();

    public ConcurrentDictionary<string, int> Warnings { get; } = new(StringComparer.Ordinal);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(ServerLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            if (logLevel >= LogLevel.Error)
            {
                log.Errors.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " — " + exception.GetType().Name + ": " + exception.Message)}");
            }
            else if (logLevel == LogLevel.Warning)
            {
                log.Warnings.AddOrUpdate(category, 1, (_, n) => n + 1);
            }
        }
    }
}

/// <summary>
/// The whole system in this process for the randomized run: an operator node (SQLite or
/// PostgreSQL, software vault) that can be restarted on its data at any moment and then listens on
/// a new port, the demo mall, the credit authorizer (test mode), the wallet's two HTTP clients
/// through <see cref="FaultyHttpHandler"/>, and the operator's deliveries to the store and calls
/// to the authorizer through one too.
/// </summary>
internal sealed class InProcessSystem : IAsyncDisposable
{
    public const string AdminToken = "randomized-run-admin-token";

    private const string AuthorizerApiKey = "randomized-run-authorizer-key";

    /// <summary>The placeholder the clients are built with; <see cref="FaultyHttpHandler"/> sends to <see cref="OperatorUrl"/>.</summary>
    private static readonly Uri s_operatorPlaceholder = new("http://operator.invalid/");

    private readonly string _directory;
    private readonly string? _postgres;
    private readonly SemaphoreSlim _restartGate = new(1, 1);
    private WebApplication? _operator;
    private WebApplication? _store;
    private WebApplication? _authorizer;
    private Uri? _authorizerUrl;
    private volatile FaultPlan _plan = FaultPlan.None;

    private InProcessSystem(string directory, string? postgres, ServerLog log, TimeSpan settlementTimeout, TimeSpan sweepInterval)
    {
        _directory = directory;
        _postgres = postgres;
        Log = log;
        SettlementTimeout = settlementTimeout;
        SweepInterval = sweepInterval;
        Database = Operator.Registry.Database.Open(OperatorOptions, OperatorDirectory);
        WalletOperator = new HttpClient(new FaultyHttpHandler(this, Link.WalletToOperator) { InnerHandler = NewSocketsHandler() }) { BaseAddress = s_operatorPlaceholder, Timeout = TimeSpan.FromSeconds(30) };
    }

    public ServerLog Log { get; }

    public TimeSpan SettlementTimeout { get; }

    public TimeSpan SweepInterval { get; }

    /// <summary>How long a stalled wallet waits: past the deadline and the sweep that expires it.</summary>
    public TimeSpan StallTime => SettlementTimeout + (3 * SweepInterval) + TimeSpan.FromMilliseconds(100);

    /// <summary>The faults in force now; <see cref="FaultPlan.None"/> between operations.</summary>
    public FaultPlan Plan
    {
        get => _plan;
        set => _plan = value;
    }

    /// <summary>The operator's registry, read by the test for its checks.</summary>
    public Database Database { get; }

    /// <summary>Where the operator listens now.</summary>
    public Uri OperatorUrl { get; private set; } = null!;

    /// <summary>Where the operator's admin listener is now.</summary>
    public Uri OperatorAdminUrl { get; private set; } = null!;

    public Uri StoreUrl { get; private set; } = null!;

    public HttpClient WalletOperator { get; }

    public HttpClient WalletStore { get; private set; } = null!;

    public int Restarts { get; private set; }

    /// <summary>The registry's own faults (the primary killed), on the highly available variant only.</summary>
    public IRegistryFaults? RegistryFaults { get; set; }

    private string OperatorDirectory => System.IO.Path.Combine(_directory, "operator");

    private string StoreDirectory => System.IO.Path.Combine(_directory, "store");

    private string AuthorizerDirectory => System.IO.Path.Combine(_directory, "authorizer");

    /// <summary>
    /// How long the operator waits for the authorizer: its time-out card then costs about this much
    /// before the wallet's same request finds the approval.
    /// </summary>
    public static TimeSpan AuthorizerTimeout { get; } = TimeSpan.FromSeconds(1);

    private OperatorOptions OperatorOptions => new()
    {
        DataDirectory = OperatorDirectory,
        DatabaseProvider = _postgres is null ? "sqlite" : "postgresql",
        ConnectionString = _postgres,
        CreateVaultIfMissing = true,
        AdminToken = AdminToken,
        Urls = "http://127.0.0.1:0",
        AdminUrls = "http://127.0.0.1:0",
        SettlementTimeout = SettlementTimeout,
        SweepInterval = SweepInterval,
        // Every wallet of the run is on loopback, one client address making hundreds of requests a
        // second: far above the per-client default, which would answer them 429.
        ClientRequestsPerSecond = 1_000_000,
        ClientRequestBurst = 1_000_000,
        Authorizer = _authorizerUrl is null ? null : new AuthorizerClientOptions { Url = _authorizerUrl.ToString(), ApiKey = AuthorizerApiKey, Timeout = AuthorizerTimeout },
    };

    public static async Task<InProcessSystem> StartAsync(string? postgresConnectionString, ServerLog log, TimeSpan settlementTimeout, TimeSpan sweepInterval)
    {
        var system = new InProcessSystem(Directory.CreateTempSubdirectory("openpurse-randomized-").FullName, postgresConnectionString, log, settlementTimeout, sweepInterval);
        try
        {
            await system.StartAuthorizerAsync();
            await system.StartOperatorAsync();
            await system.StartStoreAsync();
            return system;
        }
        catch
        {
            await system.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stops the operator node (its sweeper with it) and starts a new one on the same data, on a new port.</summary>
    public async Task RestartOperatorAsync()
    {
        await _restartGate.WaitAsync();
        try
        {
            if (_operator is { } running)
            {
                _operator = null;
                await running.StopAsync();
                await running.DisposeAsync();
            }

            // A node started while its registry fails over would fail its start and be started
            // again by its supervisor until it comes up: the run waits for that instead.
            await RegistryReadyAsync();
            await StartOperatorAsync();
            Restarts++;
        }
        finally
        {
            _restartGate.Release();
        }
    }

    public Task KillPrimaryAsync(PlannedFault fault) =>
        RegistryFaults?.KillPrimaryAsync(fault) ?? throw new InvalidOperationException("A kill of the primary was planned without a highly available registry.");

    /// <summary>
    /// Until the registry takes writes and the test's own reads find its primary: a failover may be
    /// under way, and the pool (shared with the operator's: the same connection string) may still
    /// hold connections to the primary that died, each failing once when taken.
    /// </summary>
    public async Task RegistryReadyAsync()
    {
        if (RegistryFaults is null)
        {
            return;
        }

        await RegistryFaults.LeaderAsync();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var connection = await Database.OpenAsync();
                await connection.ExecuteScalarAsync<int>("SELECT 1");
                return;
            }
            catch (System.Data.Common.DbException) when (attempt < 100)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Issues a card into a file and loads it (the operator's issuing station), then puts it into a faulty reader.</summary>
    public async Task<CardSlot> IssueCardAsync(string name, Money load)
    {
        var path = System.IO.Path.Combine(_directory, name + ".card");
        CardId cardId;
        using (var card = await _operator!.Services.GetRequiredService<CardIssuer>().IssueCardFileAsync(path, load))
        {
            cardId = card.CardId;
        }

        return new CardSlot(path, cardId, load, () => Plan);
    }

    // A party's database, read only and unpooled: the test reads beside the party, never for it.
    private static async Task<SqliteConnection> OpenReadOnlyAsync(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>The order numbers the store holds, from its database.</summary>
    public async Task<IReadOnlyList<string>> StoreOrdersAsync()
    {
        await using var connection = await OpenReadOnlyAsync(System.IO.Path.Combine(StoreDirectory, OrderDatabase.FileName));
        return [.. await connection.QueryAsync<string>("SELECT order_no FROM orders ORDER BY order_no")];
    }

    /// <summary>
    /// The store owner refunds an order through the store's own path (<see cref="RefundDesk"/>: the
    /// store's checks, its record, the request signed by the member store, <c>POST /v1/refunds</c>
    /// through the faulty store → operator link).
    /// </summary>
    public Task<Result<RefundView>> RefundAsync(string orderNo, Money amount, string reason) =>
        _store!.Services.GetRequiredService<RefundDesk>().RefundAsync(new RefundOrder(orderNo, amount.ToString(), reason), CancellationToken.None);

    /// <summary>What the store paid for an order, and every refund of it the store recorded.</summary>
    public async Task<(OrderRecord? Order, IReadOnlyList<StoredRefund> Refunds)> StoreRefundsOfAsync(string orderNo)
    {
        var orders = _store!.Services.GetRequiredService<OrderDatabase>();
        return (await orders.FindAsync(orderNo, CancellationToken.None), await orders.RefundsOfAsync(orderNo, CancellationToken.None));
    }

    /// <summary>Every refund the store recorded, from its database.</summary>
    public async Task<IReadOnlyList<StoreRefundRecord>> StoreRefundsAsync()
    {
        await using var connection = await OpenReadOnlyAsync(System.IO.Path.Combine(StoreDirectory, OrderDatabase.FileName));
        return [.. await connection.QueryAsync<StoreRefundRecord>(
            "SELECT refund_id AS RefundId, order_no AS OrderNo, amount_minor AS AmountMinor, reason AS Reason, state AS State FROM order_refunds ORDER BY requested_at")];
    }

    /// <summary>
    /// Sends a signed refund request straight to the operator, as a store would (bypassing the
    /// store's own checks and record), without faults.
    /// </summary>
    /// <returns>The HTTP status and the answer's notice or problem code.</returns>
    public async Task<(int Status, string? Notice, string? Code)> SubmitRefundAsync(string signedRequest)
    {
        using var http = new HttpClient(NewSocketsHandler()) { BaseAddress = OperatorUrl };
        using var response = await http.PostAsJsonAsync("v1/refunds", new RefundSubmission(signedRequest), ProtocolJson.Options);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return ((int)response.StatusCode,
            body.TryGetProperty("notice", out var notice) ? notice.GetString() : null,
            body.TryGetProperty("code", out var code) ? code.GetString() : null);
    }

    /// <summary>A refund request signed by a member store's key, as the store would sign it.</summary>
    public string SignRefund(RefundRequest request) =>
        SignedMessage.Sign(_store!.Services.GetRequiredService<MemberKeys>().For(request.StoreId), request, MessageTypes.RefundRequest);

    /// <summary>The store's view of an order: billed, paid or cancelled (GET /v1/orders/{no}).</summary>
    public async Task<string> OrderStateAsync(string orderNo)
    {
        using var http = new HttpClient { BaseAddress = StoreUrl };
        var order = await http.GetFromJsonAsync<JsonElement>($"v1/orders/{Uri.EscapeDataString(orderNo)}");
        return order.GetProperty("state").GetString()!;
    }

    public Task<LedgerReport> ReconcileAsync() => new Ledger(Database).ReconcileAsync(CancellationToken.None);

    /// <summary>Every authorization the credit authorizer holds, from its own database: its word on what it captured and voided.</summary>
    public async Task<IReadOnlyList<AuthorizerRecord>> AuthorizationsAsync()
    {
        await using var connection = await OpenReadOnlyAsync(System.IO.Path.Combine(AuthorizerDirectory, "authorizer.db"));
        return [.. await connection.QueryAsync<AuthorizerRecord>(
            """
            SELECT id AS Id, reference AS Reference, status AS Status, amount_minor AS AmountMinor,
                   captured_minor AS CapturedMinor, captured_at AS CapturedAt, voided_at AS VoidedAt
            FROM authorizations ORDER BY created_at
            """)];
    }

    public async ValueTask DisposeAsync()
    {
        Plan = FaultPlan.None;
        if (_store is not null)
        {
            await _store.StopAsync();
            await _store.DisposeAsync();
        }

        if (_operator is not null)
        {
            await _operator.StopAsync();
            await _operator.DisposeAsync();
        }

        if (_authorizer is not null)
        {
            await _authorizer.StopAsync();
            await _authorizer.DisposeAsync();
        }

        WalletOperator.Dispose();
        WalletStore?.Dispose();
        _restartGate.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held (a card's) is the temporary directory's to lose.
        }
    }

    private static SocketsHttpHandler NewSocketsHandler() => new() { PooledConnectionLifetime = TimeSpan.Zero };

    private void Quiet(WebApplicationBuilder builder)
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:OpenPurse"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(Log);
    }

    // The credit authorizer in test mode: its time-out card holds its answer a few seconds, not 30.
    private async Task StartAuthorizerAsync()
    {
        var app = AuthorizerHost.Build(
            new AuthorizerOptions { DataDirectory = AuthorizerDirectory, ApiKeys = [AuthorizerApiKey], Urls = "http://127.0.0.1:0", TimeoutCardHold = TimeSpan.FromSeconds(5) },
            Quiet);
        await app.StartAsync();
        _authorizer = app;
        _authorizerUrl = AuthorizerHost.BoundAddress(app);
    }

    private async Task StartOperatorAsync()
    {
        var app = await OperatorHost.BuildAsync(OperatorOptions, configure: builder =>
        {
            Quiet(builder);
            builder.Services.ConfigureHttpClientDefaults(http => http.AddHttpMessageHandler(() => new FaultyHttpHandler(this, Link.OperatorToStore)));
        });
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var listeners = app.Services.GetRequiredService<Operator.Api.Listeners>();
        OperatorUrl = listeners.PublicUrls[0];
        OperatorAdminUrl = listeners.AdminUrls[0];
        _operator = app;
    }

    // The demo mall, its operator client following the operator wherever it restarts, its member
    // stores registered by the operator's administrator.
    private async Task StartStoreAsync()
    {
        var store = StoreHost.Build(
            new StoreOptions
            {
                DataDirectory = StoreDirectory,
                MallId = DemoSystem.MallId,
                Members = DemoSystem.Members,
                OperatorUrl = s_operatorPlaceholder,
                Urls = "http://127.0.0.1:0",
                BillLifetime = TimeSpan.FromMinutes(15),
                // All the run's wallets order from loopback, one client address.
                ClientOrdersPerSecond = 1_000_000,
                ClientOrderBurst = 1_000_000,
            },
            builder =>
            {
                Quiet(builder);
                builder.Services.ConfigureHttpClientDefaults(http => http.AddHttpMessageHandler(() => new FaultyHttpHandler(this, Link.StoreToOperator)));
            });
        await store.StartAsync();
        _store = store;
        StoreUrl = new Uri(store.Urls.First());
        WalletStore = new HttpClient(new FaultyHttpHandler(this, Link.WalletToStore) { InnerHandler = NewSocketsHandler() }) { BaseAddress = StoreUrl, Timeout = TimeSpan.FromSeconds(30) };

        using var admin = new HttpClient(NewSocketsHandler()) { BaseAddress = OperatorAdminUrl };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        foreach (var registration in OperatorRegistration.For(DemoSystem.MallId, DemoSystem.Members, store.Services.GetRequiredService<MemberKeys>(), StoreUrl))
        {
            using var response = await admin.PostAsJsonAsync("v1/admin/stores", registration, ProtocolJson.Options);
            response.EnsureSuccessStatusCode();
        }
    }
}
