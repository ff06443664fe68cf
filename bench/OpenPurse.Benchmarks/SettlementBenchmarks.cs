using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenPurse.Card;
using OpenPurse.Hosting;
using OpenPurse.Operator;
using OpenPurse.Operator.Api;
using OpenPurse.Operator.Issuance;
using OpenPurse.Operator.Registry;
using OpenPurse.Operator.Security;
using OpenPurse.Operator.Settlement;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Benchmarks;

/// <summary>
/// The operator's two settlement round trips, called in-process as its HTTP handlers call them:
/// round trip 1 (<see cref="Start"/>: verify the bill's SIG1, open the card session from its
/// greeting, record the settlement "authorized" in one durable commit, sign SIG2) and round trip 2
/// (<see cref="Complete"/>: open the card's completion notice, commit "completed" with its journal
/// entry, sign the ACN), and one whole purchase (<see cref="StartThenComplete"/>).
/// </summary>
/// <remarks>
/// <para>
/// The operator is built as its host builds it, without Kestrel: the registry is SQLite with the
/// operator's own durable settings (WAL, synchronous = FULL) in a temporary directory, so every
/// commit waits for the disk; the keys are in the software vault. Logging is off, and the store has
/// no notification address, so round trip 2's delivery of the ACN is only the store lookup that
/// finds none: no HTTP anywhere.
/// </para>
/// <para>
/// A purchase cannot be run twice, so each iteration's setup prepares
/// <see cref="PurchasesPerIteration"/> of them, one per card, and each invocation runs the next.
/// The store's bill (SIG1) and the card's greeting (SELECT, INITIALIZE UPDATE) are made in the
/// setup; for <see cref="Complete"/> so are round trip 1 and the card's EXTERNAL AUTHENTICATE and
/// DEBIT. <see cref="StartThenComplete"/> includes those two APDUs at the card, because round trip 2
/// needs the card's answer to the DEBIT that round trip 1 built. The cards' memory is a
/// <see cref="MemoryStream"/>, not a card file, whose every commit the card flushes to disk: those
/// two APDUs cost about a tenth of a millisecond (the card's share in
/// <see cref="CardPurchaseBenchmarks"/>), StartThenComplete is Start + Complete + that, and every
/// flush in it is the registry's.
/// </para>
/// </remarks>
[MemoryDiagnoser]
[InvocationCount(PurchasesPerIteration)]
public class SettlementBenchmarks
{
    /// <summary>Invocations per iteration, and cards: over 100 ms of round trips, as BenchmarkDotNet asks of an iteration.</summary>
    public const int PurchasesPerIteration = 128;

    private const string StoreId = "bench-store";

    // One cent per purchase, and 2^32 − 1 cents on each card: the balance lasts as long as the
    // card's 32-bit transaction counter, so no card is topped up between iterations. That is above
    // the issuing station's default maximum, so the cards are personalized with the largest there is.
    private static readonly Money s_price = new(1, Currency.Eur);
    private static readonly Money s_load = new(uint.MaxValue, Currency.Eur);

    private readonly EcdsaSigningKey _storeKey = EcdsaSigningKey.Generate();
    private readonly Purchase[] _purchases = new Purchase[PurchasesPerIteration];
    private string _directory = "";
    private WebApplication? _operator;
    private SettlementService? _settlements;
    private long _orderSequence;
    private int _next;

    private enum Stage
    {
        /// <summary>Nothing prepared, or the last purchase is complete.</summary>
        Idle,

        /// <summary>The store's bill and the card's greeting are ready for round trip 1.</summary>
        Prepared,

        /// <summary>Round trip 1 answered; the card has not run the DEBIT yet.</summary>
        Started,

        /// <summary>The card ran the DEBIT; its answer is ready for round trip 2.</summary>
        Debited,
    }

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup()
    {
        _operator?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var purchase in _purchases)
        {
            purchase?.Card.Dispose();
        }

        _storeKey.Dispose();

        // Pooled connections keep the database open; the directory goes only once they are closed.
        SqliteConnection.ClearAllPools();
        if (_directory.Length > 0)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [IterationSetup(Targets = [nameof(StartThenComplete), nameof(Start)])]
    public void PrepareGreetings()
    {
        foreach (var purchase in _purchases)
        {
            Prepare(purchase);
        }

        _next = 0;
    }

    [IterationSetup(Target = nameof(Complete))]
    public void PrepareCompletions()
    {
        foreach (var purchase in _purchases)
        {
            Prepare(purchase);
            StartAsync(purchase).GetAwaiter().GetResult();
            RunCard(purchase);
        }

        _next = 0;
    }

    // Finishes what the iteration left open (all of Start's purchases; all of an overhead
    // iteration's), so that the next greeting finds no settlement waiting for its card.
    [IterationCleanup]
    public void FinishPurchases()
    {
        foreach (var purchase in _purchases)
        {
            if (purchase.Stage == Stage.Started)
            {
                RunCard(purchase);
            }

            if (purchase.Stage == Stage.Debited)
            {
                CompleteAsync(purchase).GetAwaiter().GetResult();
            }
        }
    }

    /// <summary>Round trip 1, the card's EXTERNAL AUTHENTICATE and DEBIT, round trip 2: the operator's whole purchase.</summary>
    [Benchmark]
    public async Task<CompleteSettlementResponse> StartThenComplete()
    {
        var purchase = Next();
        await StartAsync(purchase).ConfigureAwait(false);
        RunCard(purchase);
        return await CompleteAsync(purchase).ConfigureAwait(false);
    }

    /// <summary>Round trip 1: SIG1, the card session, the "authorized" commit, SIG2.</summary>
    [Benchmark]
    public Task<StartSettlementResponse> Start() => StartAsync(Next());

    /// <summary>Round trip 2: the completion notice, the "completed" commit with its journal entry, the ACN.</summary>
    [Benchmark]
    public Task<CompleteSettlementResponse> Complete() => CompleteAsync(Next());

    private async Task SetupAsync()
    {
        _directory = Directory.CreateTempSubdirectory("openpurse-settlement-").FullName;
        _operator = await OperatorHost.BuildAsync(
            new OperatorOptions { DataDirectory = Path.Combine(_directory, "operator"), CreateVaultIfMissing = true },
            configure: builder => builder.Logging.ClearProviders()).ConfigureAwait(false);
        var services = _operator.Services;
        _settlements = services.GetRequiredService<SettlementService>();
        var registered = await services.GetRequiredService<StoreRegistry>().RegisterAsync(
            new StoreRecord(StoreId, "Benchmark store", MallId: null, NotifyUrl: null), new JsonWebKeySet([_storeKey.PublicKey]), CancellationToken.None).ConfigureAwait(false);
        Check.That(registered.Refusal is null, $"the store is registered ({registered.Refusal?.Detail})");

        var issuer = services.GetRequiredService<CardIssuer>();
        for (var i = 0; i < _purchases.Length; i++)
        {
            var keys = await issuer.IssueAsync(CancellationToken.None).ConfigureAwait(false);
            var card = EmulatedCard.Create(new MemoryStream(), new CardPersonalization(keys.CardId, keys.KeyVersion, keys.EncKey, keys.MacKey, Money.MaxMinorUnits));
            CryptographicOperations.ZeroMemory(keys.EncKey);
            CryptographicOperations.ZeroMemory(keys.MacKey);
            _purchases[i] = new Purchase(card);
            var loaded = await issuer.LoadAsync(_purchases[i], s_load, CancellationToken.None).ConfigureAwait(false);
            Check.That(loaded == s_load, $"card {i} holds the load");
        }

        // One purchase, checked end to end: SIG2 and the ACN verify under the operator's key and say
        // what the bill said, the card paid one cent, the settlement is complete and the ledger balances.
        var operatorKeys = new JsonWebKeySet([services.GetRequiredService<ISecurityModule>().OperatorKey.PublicKey]);
        var purchase = _purchases[0];
        Prepare(purchase);
        var bill = purchase.Request!.Bill;
        var started = await StartAsync(purchase).ConfigureAwait(false);
        var info = SignedMessage.Verify<SettlementInfo>(started.SettlementInfo, operatorKeys, MessageTypes.SettlementInfo, out var infoError);
        Check.That(info is not null && info.Amount == s_price && info.Balance == s_load && info.BillDigest == SignedMessage.Digest(bill), $"SIG2 verifies and matches the bill ({infoError})");
        RunCard(purchase);
        var completed = await CompleteAsync(purchase).ConfigureAwait(false);
        var acn = SignedMessage.Verify<CompletionNotice>(completed.CompletionNotice, operatorKeys, MessageTypes.CompletionNotice, out var acnError);
        Check.That(acn is not null && acn.SettlementId == started.SettlementId && acn.Amount == s_price && acn.StoreId == StoreId, $"the ACN verifies and matches the settlement ({acnError})");
        Check.That(purchase.Balance() == s_load - s_price, "the card paid one cent");
        var view = await _settlements.GetAsync(started.SettlementId, null, SettlementReadProof.ForWallet(started), CancellationToken.None).ConfigureAwait(false);
        Check.That(view.Value?.State == "completed", "the settlement is completed");
        var ledger = await services.GetRequiredService<Ledger>().ReconcileAsync(CancellationToken.None).ConfigureAwait(false);
        Check.That(ledger.IsClean, ledger.ToText());
    }

    private Purchase Next() =>
        _next < _purchases.Length ? _purchases[_next++] : throw new InvalidOperationException($"More invocations than the {PurchasesPerIteration} purchases prepared per iteration.");

    // What the wallet brings to round trip 1: the store's signed bill with a new order number, and
    // the card's greeting to the host challenge derived from it.
    private void Prepare(Purchase purchase)
    {
        var now = DateTimeOffset.UtcNow;
        var bill = new Bill($"bench-{++_orderSequence:D9}", StoreId, null, s_price, [new BillItem("ebook-1", "An e-book", 1, s_price)], now, now.AddMinutes(15));
        var billJws = SignedMessage.Sign(_storeKey, bill, MessageTypes.Bill);
        purchase.Expect(CardHostSession.Select(), "SELECT");
        var greeting = purchase.Expect(CardHostSession.InitializeUpdate(SignedMessage.HostChallengeFor(billJws)), "INITIALIZE UPDATE");
        purchase.Request = new StartSettlementRequest(billJws, SettlementProfile.Signed, Convert.ToBase64String(greeting.Data));
        purchase.Stage = Stage.Prepared;
    }

    private async Task<StartSettlementResponse> StartAsync(Purchase purchase)
    {
        var started = await _settlements!.StartAsync(purchase.Request!, CancellationToken.None).ConfigureAwait(false);
        purchase.Started = started.Value ?? throw Refused("Round trip 1", started.Refusal);
        purchase.Stage = Stage.Started;
        return purchase.Started;
    }

    // The card's part between the round trips: EXTERNAL AUTHENTICATE, then the DEBIT with the
    // person's approval of the bill's amount.
    private static void RunCard(Purchase purchase)
    {
        var started = purchase.Started!;
        purchase.Expect(Command(started.ExternalAuthenticate), "EXTERNAL AUTHENTICATE");
        var approval = new Approval(s_price, SignedMessage.DigestBytes(purchase.Request!.Bill));
        var answer = purchase.Expect(CardHostSession.WithApproval(Command(started.Debit), approval), "DEBIT");
        purchase.Completion = new CompleteSettlementRequest(Convert.ToBase64String(answer.ToBytes()));
        purchase.Stage = Stage.Debited;
    }

    private async Task<CompleteSettlementResponse> CompleteAsync(Purchase purchase)
    {
        var completed = await _settlements!.CompleteAsync(purchase.Started!.SettlementId, purchase.Completion!, CancellationToken.None).ConfigureAwait(false);
        purchase.Stage = Stage.Idle;
        return completed.Value ?? throw Refused("Round trip 2", completed.Refusal);
    }

    private static CommandApdu Command(string base64) =>
        CommandApdu.TryParse(Convert.FromBase64String(base64), out var command) ? command : throw new InvalidOperationException("The operator's command is not an APDU.");

    // A refusal here would time the wrong path.
    private static InvalidOperationException Refused(string step, Refusal? refusal) =>
        new($"{step} was refused: {refusal?.Code} ({refusal?.Detail}).");

    /// <summary>One card on its reader, and where its purchase is.</summary>
    private sealed class Purchase(EmulatedCard card) : ICardReader
    {
        public EmulatedCard Card => card;

        public string Name => "benchmark reader";

        public Stage Stage { get; set; }

        public StartSettlementRequest? Request { get; set; }

        public StartSettlementResponse? Started { get; set; }

        public CompleteSettlementRequest? Completion { get; set; }

        public ResponseApdu Transmit(CommandApdu command) => ResponseApdu.Parse(card.Transmit(command.ToBytes()));

        public ResponseApdu Expect(CommandApdu command, string what)
        {
            var answer = Transmit(command);
            return answer.IsOk ? answer : throw new InvalidOperationException($"The card answered {what} with {(ushort)answer.Status:X4}, not 9000.");
        }

        public Money Balance()
        {
            Expect(CardHostSession.Select(), "SELECT");
            return PurseStatus.TryParse(Expect(CardHostSession.GetData(), "GET DATA").Data, out var status)
                ? status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur)
                : throw new InvalidOperationException("The card's status is malformed.");
        }
    }
}
