using System.Collections.Concurrent;
using System.Security.Cryptography;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Agent;

/// <summary>The states of a payment or top-up the agent runs (src/OpenPurse.Wallet/README.md, "The wallet agent").</summary>
internal static class OperationStates
{
    public const string ReadingCard = "reading-card";
    public const string AwaitingApproval = "awaiting-approval";
    public const string Paying = "paying";
    public const string AwaitingCardData = "awaiting-card-data";
    public const string Processing = "processing";
    public const string Completed = "completed";
    public const string Declined = "declined";
    public const string Failed = "failed";

    public static bool IsFinished(string state) => state is Completed or Declined or Failed;
}

/// <summary>What went wrong, in the person's words, with the wallet's stable code.</summary>
internal sealed record OperationError(string Code, string Detail, bool CardDebited);

/// <summary>
/// One payment or top-up: who asked (the origin), what exactly (the bill, the amount: fixed when it
/// is created, never changed), where it stands, and the one approval it waits for. Every change of
/// state happens under its lock, in <see cref="AgentOperations"/> only.
/// </summary>
internal sealed class AgentOperation
{
    public AgentOperation(bool isTopUp, string origin, DateTimeOffset createdAt)
    {
        IsTopUp = isTopUp;
        Origin = origin;
        CreatedAt = createdAt;
        State = isTopUp ? OperationStates.AwaitingCardData : OperationStates.ReadingCard;
    }

    public Guid Id { get; } = Guid.NewGuid();

    public bool IsTopUp { get; }

    /// <summary>The allowed origin that created it: the only one that may see it.</summary>
    public string Origin { get; }

    /// <summary>The approval page's form token: 32 random bytes, base64url.</summary>
    public string Token { get; } = Base64UrlToken();

    public DateTimeOffset CreatedAt { get; }

    internal object Gate { get; } = new();

    public string State { get; internal set; }

    /// <summary>When the approval lapses; set once the approval is asked.</summary>
    public DateTimeOffset? ApprovalDeadline { get; internal set; }

    public DateTimeOffset? FinishedAt { get; internal set; }

    public string? Progress { get; internal set; }

    // A payment: the verified bill, then what the person is asked, then the outcome.
    public string? BillJws { get; init; }

    public SettlementProfile Profile { get; init; }

    public Bill? Bill { get; internal set; }

    public PurchaseConfirmation? Confirmation { get; internal set; }

    public PurchaseResult? Result { get; internal set; }

    // A top-up: the amount asked for, the card read for the page, then the outcome.
    public Money Amount { get; init; }

    public PurseStatus? CardStatus { get; internal set; }

    public TopUpResult? TopUpResult { get; internal set; }

    /// <summary>The card data the person typed was refused before anything was sent; the page says so and asks again.</summary>
    public OperationError? EntryError { get; internal set; }

    public OperationError? Error { get; internal set; }

    /// <summary>The person's answer: true to approve, false to decline, or the approval lapsing.</summary>
    internal TaskCompletionSource<bool> Decision { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completed once the bill is verified (true) or refused (the exception).</summary>
    internal TaskCompletionSource Verified { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A token compared in constant time: the form's hidden field against this one.</summary>
    public bool TokenMatches(string? token)
    {
        if (token is null || token.Length != Token.Length)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(token), System.Text.Encoding.ASCII.GetBytes(Token));
    }

    private static string Base64UrlToken() => System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}

/// <summary>
/// The payments and top-ups the agent runs: the one state machine (reading-card → awaiting-approval
/// → paying → completed, or declined, or failed; awaiting-card-data → processing → completed, or
/// declined, or failed), each run as a background task, one card conversation at a time over the
/// one reader. At most <see cref="OpenMax"/> are open; finished ones are kept for
/// <see cref="FinishedKept"/> so that the page that asked can read the outcome, then dropped.
/// </summary>
internal sealed class AgentOperations : IAsyncDisposable
{
    /// <summary>The most payments and top-ups open at once.</summary>
    public const int OpenMax = 8;

    /// <summary>How long a finished payment or top-up can still be read.</summary>
    public static readonly TimeSpan FinishedKept = TimeSpan.FromMinutes(10);

    private static readonly TimeSpan s_httpTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How often an empty reader is asked again for a card.</summary>
    private static readonly TimeSpan s_cardPoll = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentDictionary<Guid, AgentOperation> _operations = new();
    private readonly ConcurrentDictionary<Guid, Task> _running = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly AgentOptions _options;
    private readonly ICardReader _reader;
    private readonly HttpMessageHandler _http;
    private readonly bool _ownsHttp;
    private readonly Lock _admission = new();

    private Uri _operatorUrl;

    public AgentOperations(AgentOptions options, ICardReader reader)
    {
        _options = options;
        _operatorUrl = options.OperatorUrl;
        _reader = reader;
        _ownsHttp = options.HttpHandler is null;
        _http = options.HttpHandler ?? WalletTrust.CreateHandler(options.TrustedRoots);
    }

    /// <summary>Held from a greeting to the value command's answer: one card conversation at a time.</summary>
    public SemaphoreSlim CardConversation { get; } = new(1, 1);

    public AgentOptions Options => _options;

    /// <summary>The operator payments settle with and top-ups go to; flows started later use a new one.</summary>
    public Uri OperatorUrl
    {
        get => Volatile.Read(ref _operatorUrl);
        set => Volatile.Write(ref _operatorUrl, value);
    }

    /// <summary>The operator's origin, the only one top-ups are taken from.</summary>
    public string OperatorOrigin => AgentOrigins.Canonical(OperatorUrl.GetLeftPart(UriPartial.Authority))!;

    private TimeProvider Time => _options.Time;

    /// <summary>The operation, or null when there is none by that id.</summary>
    public AgentOperation? Find(Guid id)
    {
        Sweep();
        return _operations.TryGetValue(id, out var operation) ? operation : null;
    }

    /// <summary>
    /// Starts paying a bill for <paramref name="origin"/> once its signature (SIG1, with the store's
    /// keys from the operator), its sum and its expiry are checked; the card is read in the background.
    /// </summary>
    /// <returns>The payment, or null when <see cref="OpenMax"/> are open.</returns>
    /// <exception cref="WalletException">The bill was refused before anything reached the card.</exception>
    public async Task<AgentOperation?> StartPaymentAsync(string origin, string billJws, SettlementProfile profile, CancellationToken cancellationToken)
    {
        var operation = Admit(new AgentOperation(isTopUp: false, origin, Time.GetUtcNow()) { BillJws = billJws, Profile = profile });
        if (operation is null)
        {
            return null;
        }

        Run(operation, () => PayAsync(operation));
        try
        {
            await operation.Verified.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (operation.Verified.Task.IsFaulted)
        {
            // A refused bill leaves nothing behind: the page that sent it has its answer.
            _operations.TryRemove(operation.Id, out _);
            throw;
        }

        return operation;
    }

    /// <summary>Opens a top-up of <paramref name="amount"/> for <paramref name="origin"/>: it waits for the person to type the credit card's data on the approval page.</summary>
    /// <returns>The top-up, or null when <see cref="OpenMax"/> are open.</returns>
    public AgentOperation? StartTopUp(string origin, Money amount)
    {
        var operation = Admit(new AgentOperation(isTopUp: true, origin, Time.GetUtcNow()) { Amount = amount });
        if (operation is null)
        {
            return null;
        }

        lock (operation.Gate)
        {
            operation.ApprovalDeadline = operation.CreatedAt + _options.ApprovalLifetime;
        }

        // The approval lapses by itself: declined, nothing charged, nothing written.
        Run(operation, () => LapseAsync(operation));
        return operation;
    }

    /// <summary>The person approved or declined a payment on the agent's page.</summary>
    /// <returns>False when the payment is not waiting for its approval (any more).</returns>
    public static bool Decide(AgentOperation operation, bool approve)
    {
        lock (operation.Gate)
        {
            if (operation.IsTopUp || operation.State != OperationStates.AwaitingApproval || !operation.Decision.TrySetResult(approve))
            {
                return false;
            }

            operation.State = approve ? OperationStates.Paying : OperationStates.Declined;
            return true;
        }
    }

    /// <summary>The person declined a top-up on the agent's page.</summary>
    /// <returns>False when the top-up is not waiting for the card data (any more).</returns>
    public bool DeclineTopUp(AgentOperation operation)
    {
        lock (operation.Gate)
        {
            if (!operation.IsTopUp || operation.State != OperationStates.AwaitingCardData || !operation.Decision.TrySetResult(false))
            {
                return false;
            }

            Finish(operation, OperationStates.Declined, null);
            return true;
        }
    }

    /// <summary>
    /// The person typed the credit card's data and approved the top-up: checked first (a mistyped
    /// number costs nothing and the page asks again), then the top-up runs in the background. The
    /// card data lives only as long as encrypting it for the authorizer takes; it is never logged.
    /// </summary>
    /// <returns>False when the top-up is not waiting for the card data (any more).</returns>
    public bool ApproveTopUp(AgentOperation operation, string? number, string? expiry, string? pin)
    {
        lock (operation.Gate)
        {
            if (!operation.IsTopUp || operation.State != OperationStates.AwaitingCardData)
            {
                return false;
            }

            CardData cardData;
            try
            {
                cardData = CreditCardEntry.Check(number, expiry, pin, Time.GetUtcNow());
            }
            catch (WalletException e)
            {
                operation.EntryError = new OperationError(e.Code, e.Message, CardDebited: false);
                return true;
            }

            if (!operation.Decision.TrySetResult(true))
            {
                return false;
            }

            operation.EntryError = null;
            operation.State = OperationStates.Processing;
            Run(operation, () => TopUpAsync(operation, cardData));
            return true;
        }
    }

    /// <summary>Whether a card answers in the reader; a card in a conversation is there.</summary>
    public async Task<bool> CardPresentAsync(CancellationToken cancellationToken)
    {
        if (!await CardConversation.WaitAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        try
        {
            new WalletCard(_reader).Select();
            return true;
        }
        catch (Exception e) when (e is WalletException or CardRemovedException)
        {
            return false;
        }
        finally
        {
            CardConversation.Release();
        }
    }

    /// <summary>
    /// Waits, with the reader held, until a card answers in it: a person asks to pay first and puts
    /// the card on the reader after (FIG. 16), so an empty reader is a wait, not a failure. After
    /// the approval lifetime with no card, the payment ends with nothing written.
    /// </summary>
    private async Task WaitForCardAsync(CancellationToken cancellationToken)
    {
        var deadline = Time.GetUtcNow() + _options.ApprovalLifetime;
        while (true)
        {
            try
            {
                new WalletCard(_reader).Select();
                return;
            }
            catch (Exception e) when (e is WalletException or CardRemovedException)
            {
                if (Time.GetUtcNow() >= deadline)
                {
                    throw new WalletException(WalletErrors.CardRemoved, $"No card came to the reader within {_options.ApprovalLifetime.TotalMinutes:0} minutes. Nothing was paid.", innerException: e);
                }
            }

            await Task.Delay(s_cardPoll, Time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The card's number and balance for a top-up's page, read once when the reader is free.</summary>
    public async Task<PurseStatus?> CardStatusAsync(AgentOperation operation, CancellationToken cancellationToken)
    {
        if (operation.CardStatus is { } known)
        {
            return known;
        }

        if (!await CardConversation.WaitAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        try
        {
            var card = new WalletCard(_reader);
            card.Select();
            var status = card.Status();
            lock (operation.Gate)
            {
                operation.CardStatus = status;
            }

            return status;
        }
        catch (Exception e) when (e is WalletException or CardRemovedException)
        {
            return null;
        }
        finally
        {
            CardConversation.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var operation in _operations.Values)
        {
            operation.Decision.TrySetResult(false);
        }

        try
        {
            await Task.WhenAll(_running.Values).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A card conversation that does not end is left to the process's end.
        }

        _stopping.Dispose();
        CardConversation.Dispose();
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    private AgentOperation? Admit(AgentOperation operation)
    {
        Sweep();
        lock (_admission)
        {
            if (_operations.Values.Count(o => !OperationStates.IsFinished(o.State)) >= OpenMax)
            {
                return null;
            }

            _operations[operation.Id] = operation;
            return operation;
        }
    }

    // Finished operations are dropped once their outcome has been readable for a while.
    private void Sweep()
    {
        var now = Time.GetUtcNow();
        foreach (var (id, operation) in _operations)
        {
            if (operation.FinishedAt is { } finished && now - finished > FinishedKept)
            {
                _operations.TryRemove(id, out _);
            }
        }
    }

    private void Run(AgentOperation operation, Func<Task> work)
    {
        var task = Task.Run(work);
        _running[operation.Id] = task;
        _ = task.ContinueWith(_ => _running.TryRemove(operation.Id, out Task? _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void Finish(AgentOperation operation, string state, OperationError? error)
    {
        lock (operation.Gate)
        {
            if (OperationStates.IsFinished(operation.State) && operation.FinishedAt is not null)
            {
                return;
            }

            operation.State = state;
            operation.Error = error;
            operation.FinishedAt = Time.GetUtcNow();
        }
    }

    private HttpClient Client(Uri baseAddress) => new(_http, disposeHandler: false) { BaseAddress = baseAddress, Timeout = s_httpTimeout };

    private async Task PayAsync(AgentOperation operation)
    {
        using var store = Client(new Uri(operation.Origin + "/"));
        using var operatorHttp = Client(OperatorUrl);
        var prompt = new AgentPrompt(this, operation);
        var flow = new PurchaseFlow(store, operatorHttp, _reader, prompt, Time) { CardConversation = CardConversation, CardArrival = WaitForCardAsync };
        try
        {
            var result = await flow.PayBillAsync(operation.BillJws!, operation.Profile, _stopping.Token).ConfigureAwait(false);
            lock (operation.Gate)
            {
                operation.Result = result;
            }

            Finish(operation, OperationStates.Completed, null);
        }
        catch (WalletException e) when (e.Code == WalletErrors.Declined)
        {
            Finish(operation, OperationStates.Declined, new OperationError(e.Code, e.Message, CardDebited: false));
        }
        catch (Exception e) when (!operation.Verified.Task.IsCompleted)
        {
            // Refused before the card was touched: the request that brought the bill answers it.
            operation.Verified.TrySetException(e);
            Finish(operation, OperationStates.Failed, Describe(e));
        }
#pragma warning disable CA1031 // A background payment's every failure is its outcome, for the page that polls it.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Finish(operation, OperationStates.Failed, Describe(e));
        }
    }

    private async Task TopUpAsync(AgentOperation operation, CardData cardData)
    {
        using var operatorHttp = Client(OperatorUrl);
        var prompt = new AgentPrompt(this, operation);
        var flow = new TopUpFlow(new OperatorApi(operatorHttp), _reader, prompt) { CardConversation = CardConversation, CardArrival = WaitForCardAsync };
        try
        {
            var result = await flow.RunAsync(operation.Amount, cardData, _stopping.Token).ConfigureAwait(false);
            lock (operation.Gate)
            {
                operation.TopUpResult = result;
            }

            Finish(operation, OperationStates.Completed, null);
        }
#pragma warning disable CA1031 // As for payments.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Finish(operation, OperationStates.Failed, Describe(e));
        }
    }

    // A top-up whose card data never came is declined when its approval lapses.
    private async Task LapseAsync(AgentOperation operation)
    {
        var lapsed = await WaitForDecisionAsync(operation).ConfigureAwait(false) is null;
        if (lapsed)
        {
            lock (operation.Gate)
            {
                if (operation.State == OperationStates.AwaitingCardData && operation.Decision.TrySetResult(false))
                {
                    Finish(operation, OperationStates.Declined, new OperationError(WalletErrors.TopUpNotConfirmed, "The top-up was not approved in time. Nothing was added to the card or charged.", CardDebited: false));
                }
            }
        }
    }

    /// <summary>The person's answer, or null when the approval lapsed first (or the agent stops).</summary>
    internal async Task<bool?> WaitForDecisionAsync(AgentOperation operation)
    {
        var deadline = operation.ApprovalDeadline ?? Time.GetUtcNow();
        var remaining = deadline - Time.GetUtcNow();
        using var lapse = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero, Time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(lapse.Token, _stopping.Token);
        try
        {
            return await operation.Decision.Task.WaitAsync(either.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>The payment's card was read and round trip 1 answered: the person is asked, on the agent's page.</summary>
    internal async ValueTask<bool> AskApprovalAsync(AgentOperation operation, PurchaseConfirmation confirmation)
    {
        lock (operation.Gate)
        {
            operation.Confirmation = confirmation;
            operation.ApprovalDeadline = Time.GetUtcNow() + _options.ApprovalLifetime;
            operation.State = OperationStates.AwaitingApproval;
        }

        if (await WaitForDecisionAsync(operation).ConfigureAwait(false) is { } decided)
        {
            return decided;
        }

        lock (operation.Gate)
        {
            // The lapse and a late approval race here: the first to set the decision wins.
            if (operation.Decision.TrySetResult(false))
            {
                operation.State = OperationStates.Declined;
                return false;
            }

            return operation.Decision.Task.Result;
        }
    }

    private static OperationError Describe(Exception e) => e switch
    {
        WalletException w => new OperationError(w.Code, w.Message, w.CardDebited),
        OperationCanceledException => new OperationError(WalletErrors.Unexpected, "The agent stopped before this finished.", CardDebited: false),
        _ => new OperationError(WalletErrors.Unexpected, "Something went wrong in the agent.", CardDebited: false),
    };

    /// <summary>What a flow shows and asks, for the agent's pages: progress, the verified bill, and approvals from the person's POST.</summary>
    private sealed class AgentPrompt(AgentOperations operations, AgentOperation operation) : ITopUpPrompt
    {
        public void Progress(string message)
        {
            lock (operation.Gate)
            {
                operation.Progress = message;
            }
        }

        public void ShowEstimate(EstimateResponse estimate)
        {
        }

        public void ShowBill(Bill bill)
        {
            lock (operation.Gate)
            {
                operation.Bill = bill;
            }

            operation.Verified.TrySetResult();
        }

        public ValueTask<bool> ConfirmAsync(PurchaseConfirmation confirmation, CancellationToken cancellationToken) =>
            operations.AskApprovalAsync(operation, confirmation);

        // The person approved the amount and typed the card data before the flow ran: the flow's own
        // confirmation passes only for exactly that amount.
        public ValueTask<bool> ConfirmTopUpAsync(TopUpConfirmation confirmation, CancellationToken cancellationToken) =>
            ValueTask.FromResult(confirmation.Amount == operation.Amount);

        public T WhileCardWorks<T>(string message, Func<T> work)
        {
            Progress(message);
            return work();
        }
    }
}
