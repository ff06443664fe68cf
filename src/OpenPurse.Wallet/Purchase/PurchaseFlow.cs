using System.Buffers.Text;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.Wallet.Purchase;

/// <summary>
/// One purchase from the card holder's side, in two operator round trips and four card commands
/// (docs/protocol.md, two round trips): the store's bill (SIG1) → SELECT and INITIALIZE
/// UPDATE with a host challenge taken from the bill → round trip 1 → the person agrees → EXTERNAL
/// AUTHENTICATE and DEBIT with the person's approval → round trip 2 → receipt → download.
/// </summary>
/// <remarks>
/// Every signature is checked before its contents are used, and every field that ties a message to
/// this purchase is compared; the card is written to only after the person agreed to the bill and
/// balance shown, and the approval the card checks is built from that bill, never from the
/// operator's answer. One purchase at a time per instance; the key sets it fetched are kept for the
/// next.
/// </remarks>
public sealed class PurchaseFlow
{
    /// <summary>How often round trip 2 is sent when the operator cannot be reached: the card has paid, so the wallet insists.</summary>
    internal const int CompletionAttemptsMax = 3;

    /// <summary>
    /// How long round trip 2 goes on being sent, past <see cref="CompletionAttemptsMax"/>, while the
    /// operator answers 503 with Retry-After: a node whose database fails over to a standby says so
    /// for the seconds the promotion takes (its leader lock's time to live and a loop or two).
    /// </summary>
    internal static readonly TimeSpan CompletionRetryBudget = TimeSpan.FromSeconds(60);

    private const string BillName = "bill";
    private const string SettlementInfoName = "settlement_info";
    private const string CompletionNoticeName = "acn";
    private const string ReceiptName = "receipt";

    private readonly StoreApi _store;
    private readonly OperatorApi _operator;
    private readonly ICardReader _reader;
    private readonly IPurchasePrompt _prompt;
    private readonly TimeProvider _time;

    /// <summary>Creates the flow.</summary>
    /// <param name="store">A client whose base address is the store's (or mall's) URL.</param>
    /// <param name="operatorApi">A client whose base address is the operator's URL.</param>
    /// <param name="reader">The reader holding the card.</param>
    /// <param name="prompt">What the person sees and answers.</param>
    /// <param name="timeProvider">The clock for the bill's expiry; the system's by default.</param>
    /// <exception cref="ArgumentException">A client without an absolute http(s) base address.</exception>
    public PurchaseFlow(HttpClient store, HttpClient operatorApi, ICardReader reader, IPurchasePrompt prompt, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(operatorApi);
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(prompt);
        _store = new StoreApi(store);
        _operator = new OperatorApi(operatorApi);
        _reader = reader;
        _prompt = prompt;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The pause before sending round trip 2 again, times the attempt number.</summary>
    internal TimeSpan CompletionRetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// When set, the card conversation runs only while holding it: from the greeting to the balance
    /// read after the payment (the last card command of the flow, after round trip 2 and the
    /// download), so that another flow's SELECT never cuts into it. The agent runs several
    /// payments and top-ups over one reader.
    /// </summary>
    internal SemaphoreSlim? CardConversation { get; init; }

    /// <summary>When set, waits for a card in the reader before the greeting (see <see cref="CardHold"/>): the agent's person puts the card on the reader after asking to pay.</summary>
    internal Func<CancellationToken, Task>? CardArrival { get; init; }

    /// <summary>Buys <paramref name="request"/>'s article and returns the proofs and the goods.</summary>
    /// <exception cref="WalletException">Any refusal, bad signature, mismatch, or the person declining; <see cref="WalletException.CardDebited"/> says whether the card had paid.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (never while the card works).</exception>
    public async Task<PurchaseResult> RunAsync(PurchaseRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        using var trace = WalletTrace.Start("pay");
        var counts = new Counts(_operator.SettlementRequests, _operator.KeySetRequests, _store.Requests);
        var refreshed = new HashSet<string>(StringComparer.Ordinal);

        // 1. Catalog, estimate, order: BILL+SIG1, checked against what was asked and estimated.
        _prompt.Progress("Reading the store's catalog");
        var catalog = await _store.CatalogAsync(cancellationToken).ConfigureAwait(false);
        var item = PickItem(catalog, request);
        var order = new OrderRequest(item.StoreId, [new OrderRequestItem(item.Sku, request.Quantity)]);
        _prompt.Progress($"Asking {item.StoreId} for an estimate");
        var estimate = await _store.EstimateAsync(order, cancellationToken).ConfigureAwait(false);
        CheckEstimate(estimate, order);
        _prompt.ShowEstimate(estimate);

        // The key sets come while the store makes the bill, so they add no sequential round trip.
        _prompt.Progress("Ordering; fetching the signers' keys from the operator");
        var orderTask = _store.OrderAsync(order, cancellationToken);
        var keysTask = PrefetchKeysAsync(item.StoreId, cancellationToken);
        await Task.WhenAll(orderTask, keysTask).ConfigureAwait(false);
        var created = await orderTask.ConfigureAwait(false);
        var billJws = created.Bill;
        var bill = await VerifyAsync<Bill>(billJws, item.StoreId, MessageTypes.Bill, BillName, "bill (SIG1)", refreshed, null, cancellationToken).ConfigureAwait(false);
        CheckBill(bill, created, order, estimate);
        _prompt.ShowBill(bill);
        return await PayAsync(billJws, bill, request.Profile, counts, refreshed, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Pays a bill the store gave someone else (the agent: a shop's page ordered, the person's
    /// browser brought the bill): SIG1 verified with the keys the operator registered for the store
    /// the bill names, the bill adding up and not expired, then the same payment as <see cref="RunAsync"/>.
    /// The store client is the store (or mall) the receipt fallback and the download go to.
    /// </summary>
    /// <exception cref="WalletException">As <see cref="RunAsync"/>; a bill that cannot be read, is not signed by its store, does not add up (<c>bill.mismatch</c>) or expired (<c>bill.expired</c>) is refused before the card is touched.</exception>
    public async Task<PurchaseResult> PayBillAsync(string billJws, SettlementProfile profile, CancellationToken cancellationToken = default)
    {
        if (!Enum.IsDefined(profile))
        {
            throw new WalletException(WalletErrors.InvalidRequest, $"Unknown settlement profile {profile}.");
        }

        using var trace = WalletTrace.Start("pay-bill");
        var counts = new Counts(_operator.SettlementRequests, _operator.KeySetRequests, _store.Requests);
        var refreshed = new HashSet<string>(StringComparer.Ordinal);

        // The store id is read before the signature is checked only to know whose keys check it: the
        // signature then covers it, and a bill naming another store fails with that store's keys.
        var storeId = PeekStoreId(billJws);
        var bill = await VerifyAsync<Bill>(billJws, storeId, MessageTypes.Bill, BillName, "bill (SIG1)", refreshed, null, cancellationToken).ConfigureAwait(false);
        Mismatch(BillName, null, "store", storeId, bill.StoreId);
        if (!bill.AddsUp())
        {
            throw new WalletException(WalletErrors.BillMismatch, "The bill's lines do not add up to its amount. Nothing was paid.");
        }

        CheckExpiry(bill);
        _prompt.ShowBill(bill);
        return await PayAsync(billJws, bill, profile, counts, refreshed, cancellationToken).ConfigureAwait(false);
    }

    // The store id in a compact JWS's payload, unverified; a bill without one is not a bill.
    private static string PeekStoreId(string? billJws)
    {
        try
        {
            if (Jws.PeekPayload(billJws) is { } bytes)
            {
                using var payload = JsonDocument.Parse(bytes);
                if (payload.RootElement.ValueKind == JsonValueKind.Object
                    && payload.RootElement.TryGetProperty("storeId", out var storeId)
                    && storeId.ValueKind == JsonValueKind.String
                    && storeId.GetString() is { Length: > 0 and <= PurchaseRequest.IdentifierLengthMax } id)
                {
                    return id;
                }
            }
        }
        catch (JsonException e)
        {
            throw new WalletException(WalletErrors.Signature(BillName, "signature.malformed"), "The bill cannot be read. Nothing was paid.", innerException: e);
        }

        throw new WalletException(WalletErrors.Signature(BillName, "signature.malformed"), "The bill cannot be read or names no store. Nothing was paid.");
    }

    // The greeting, round trip 1, the person's approval, the DEBIT, round trip 2, the receipt and the
    // download: the same whoever brought the bill, once it is verified.
    private async Task<PurchaseResult> PayAsync(string billJws, Bill bill, SettlementProfile profile, Counts counts, HashSet<string> refreshed, CancellationToken cancellationToken)
    {
        var card = new CountingReader(_reader);
        var walletCard = new WalletCard(card);
        using var hold = await CardHold.TakeAsync(CardConversation, _prompt, cancellationToken, CardArrival).ConfigureAwait(false);

        // 2–3. The card's greeting answers a challenge made from this bill only; round trip 1. When
        // the operator owes the card value first (a debit whose settlement did not complete), the
        // card syncs and greets again.
        CardGreeting greeting;
        StartSettlementResponse start;
        int commandsBefore;
        for (var attempt = 1; ; attempt++)
        {
            // The payment's commands are counted from this greeting on (a sync before it has its own).
            commandsBefore = card.Commands;
            var (greeted, greetingData) = _prompt.WhileCardWorks("Reading your card", () =>
            {
                walletCard.Select();
                return walletCard.InitializeUpdate(SignedMessage.HostChallengeFor(billJws));
            });
            greeting = greeted;
            var balanceRead = greeting.Status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency);
            if (balanceRead < bill.Amount)
            {
                throw new WalletException(WalletErrors.CardInsufficientValue, $"Your card {greeting.CardId.Masked} holds {balanceRead}, less than the bill's {bill.Amount}. Nothing was paid.");
            }

            _prompt.Progress("Asking the operator to prepare the payment");
            try
            {
                start = await _operator.StartAsync(new StartSettlementRequest(billJws, profile, Convert.ToBase64String(greetingData)), cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (WalletException e) when (attempt == 1 && e.Code == WalletErrors.With(WalletErrors.OperatorRefused, ProblemCode.CardSyncRequired.Code))
            {
                _prompt.Progress("The operator owes your card value from an earlier payment that did not complete; returning it first");
                await new CardSyncFlow(_operator, _reader, _prompt).RunAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        var cardBalance = greeting.Status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency);
        var settlementId = start.SettlementId;
        var (externalAuthenticate, _) = DecodeCommand(start.ExternalAuthenticate, PurseInstruction.ExternalAuthenticate, "EXTERNAL AUTHENTICATE", settlementId);
        var (debit, debitBytes) = DecodeCommand(start.Debit, PurseInstruction.Debit, "DEBIT", settlementId);
        if (debit.Data.Length + Approval.Length > CommandApdu.DataLengthMax)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, "The operator's DEBIT leaves no room for your approval.", settlementId: settlementId);
        }

        Money balance;
        var balanceSigned = false;
        if (profile == SettlementProfile.Signed || start.SettlementInfo is not null)
        {
            // In profile "lean" SIG2 is optional; a SIG2 that comes anyway must still be right.
            if (start.SettlementInfo is null)
            {
                throw new WalletException(WalletErrors.SettlementInfoMissing, "The operator sent no signed settlement information (SIG2) in profile \"signed\". Nothing was paid.", settlementId: settlementId);
            }

            var info = await VerifyAsync<SettlementInfo>(start.SettlementInfo, null, MessageTypes.SettlementInfo, SettlementInfoName, "settlement information (SIG2)", refreshed, settlementId, cancellationToken).ConfigureAwait(false);
            CheckSettlementInfo(info, settlementId, greeting, cardBalance, bill, billJws, debitBytes);
            balance = info.Balance;
            balanceSigned = true;
        }
        else
        {
            balance = cardBalance;
        }

        // 4. The person sees the balance beside the bill and agrees, or nothing reaches the card.
        if (!await _prompt.ConfirmAsync(new PurchaseConfirmation(bill, balance, balanceSigned, greeting.CardId.Masked), cancellationToken).ConfigureAwait(false))
        {
            throw new WalletException(WalletErrors.Declined, "You declined the payment. Nothing was written to the card.", settlementId: settlementId);
        }

        // 5. The card pays. The approval is the bill the person saw, never the operator's word.
        var approval = new Approval(bill.Amount, SignedMessage.DigestBytes(billJws));
        var debitAnswer = _prompt.WhileCardWorks("Your card is paying; keep it in the reader", () =>
        {
            var authenticated = walletCard.Send(externalAuthenticate, "EXTERNAL AUTHENTICATE");
            WalletCard.Require(authenticated, "EXTERNAL AUTHENTICATE", settlementId: settlementId);
            try
            {
                return card.Transmit(CardHostSession.WithApproval(debit, approval));
            }
            catch (CardRemovedException e)
            {
                throw new WalletException(
                    WalletErrors.CardRemoved,
                    $"The card left the reader during the DEBIT: whether it paid is unknown. The operator resolves settlement {settlementId} from the card's log.",
                    settlementId: settlementId,
                    innerException: e);
            }
        });
        var cardCommands = card.Commands - commandsBefore;
        Debug.Assert(cardCommands == 4, "A payment takes four card commands.");
        if (!debitAnswer.IsOk)
        {
            // The card wrote nothing; the operator's pending settlement lapses unanswered.
            throw WalletCard.Refusal(debitAnswer.Status, "the DEBIT", settlementId: settlementId);
        }

        // 6–7. From here on the card has paid: every failure says so and names the settlement.
        try
        {
            var completion = await CompleteAsync(settlementId, new CompleteSettlementRequest(Convert.ToBase64String(debitAnswer.ToBytes())), cancellationToken).ConfigureAwait(false);
            var acnJws = completion.CompletionNotice;
            var acn = await VerifyAsync<CompletionNotice>(acnJws, null, MessageTypes.CompletionNotice, CompletionNoticeName, "completion notice (SIG3)", refreshed, settlementId, cancellationToken).ConfigureAwait(false);
            CheckCompletionNotice(acn, settlementId, bill, billJws);

            var receiptFromStore = completion.Receipt is null;
            var receiptJws = completion.Receipt;
            if (receiptJws is null)
            {
                _prompt.Progress("Bringing the completion notice to the store for its receipt");
                receiptJws = (await _store.DeliverCompletionAsync(bill.OrderNo, new CompletionDelivery(acnJws), cancellationToken).ConfigureAwait(false)).Receipt;
            }

            var receipt = await VerifyAsync<Receipt>(receiptJws, bill.StoreId, MessageTypes.Receipt, ReceiptName, "receipt (SIG4)", refreshed, settlementId, cancellationToken).ConfigureAwait(false);
            CheckReceipt(receipt, settlementId, bill, acnJws);

            _prompt.Progress("Downloading your purchase");
            var content = await _store.DownloadAsync(bill.OrderNo, receiptJws, cancellationToken).ConfigureAwait(false);
            var status = _prompt.WhileCardWorks("Reading your new balance", walletCard.Status);

            if (status.CardId != greeting.CardId)
            {
                throw new WalletException(WalletErrors.CardMalformed, "Another card answered after the payment.");
            }

            return new PurchaseResult
            {
                OrderNo = bill.OrderNo,
                SettlementId = settlementId,
                Profile = profile,
                CardMasked = greeting.CardId.Masked,
                Bill = bill,
                BalanceBefore = balance,
                BalanceAfter = status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency),
                CompletionNotice = acn,
                CompletionNoticeJws = acnJws,
                Receipt = receipt,
                ReceiptJws = receiptJws,
                ReceiptFromStore = receiptFromStore,
                Content = content,
                OperatorRoundTrips = _operator.SettlementRequests - counts.SettlementRequests,
                KeySetRequests = _operator.KeySetRequests - counts.KeySetRequests,
                StoreRequests = _store.Requests - counts.StoreRequests,
                CardCommands = cardCommands,
                CardCommandsTotal = card.Commands,
            };
        }
        catch (WalletException e) when (!e.CardDebited)
        {
            throw new WalletException(
                e.Code,
                $"{e.Message} Your card has paid {bill.Amount}; the operator holds settlement {settlementId}: keep this number.",
                cardDebited: true,
                settlementId: settlementId,
                innerException: e);
        }
    }

    // The operator's and the store's counters when the purchase began, for what it cost.
    private readonly record struct Counts(int SettlementRequests, int KeySetRequests, int StoreRequests);

    private async Task PrefetchKeysAsync(string storeId, CancellationToken cancellationToken)
    {
        // One after the other: the operator client counts and caches without locks.
        await _operator.OperatorKeysAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        await _operator.StoreKeysAsync(storeId, refresh: false, cancellationToken).ConfigureAwait(false);
    }

    // Round trip 2 is sent again when the operator could not be reached or failed: the card has
    // paid, and completing the same card answer twice settles once (the operator keys it by settlement).
    private async Task<CompleteSettlementResponse> CompleteAsync(Guid settlementId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            _prompt.Progress(attempt == 1 ? "Reporting the card's answer to the operator"
                : attempt <= CompletionAttemptsMax ? $"Reporting the card's answer to the operator again (attempt {attempt} of {CompletionAttemptsMax})"
                : $"Reporting the card's answer to the operator again (attempt {attempt}; the operator asked to wait)");
            try
            {
                return await _operator.CompleteAsync(settlementId, request, cancellationToken).ConfigureAwait(false);
            }
            catch (WalletException e) when (
                (e.Code.StartsWith(WalletErrors.OperatorUnreachable, StringComparison.Ordinal) || e.Code.StartsWith(WalletErrors.OperatorUnavailable, StringComparison.Ordinal))
                && (attempt < CompletionAttemptsMax || (e.RetryAfter is not null && _time.GetElapsedTime(started) < CompletionRetryBudget)))
            {
                // The wallet's own growing pause for its first attempts, or longer when asked; past
                // them, what the operator asks.
                var pause = CompletionRetryDelay * attempt;
                pause = attempt >= CompletionAttemptsMax || e.RetryAfter > pause ? e.RetryAfter!.Value : pause;
                await Task.Delay(pause, _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Verifies a signed message with the operator's keys (<paramref name="storeId"/> null) or a
    /// store's registered keys. An unknown key id refreshes the set once per purchase, for rotation.
    /// </summary>
    private async Task<T> VerifyAsync<T>(string? compact, string? storeId, string type, string name, string display, HashSet<string> refreshed, Guid? settlementId, CancellationToken cancellationToken)
        where T : class
    {
        var keys = await KeysAsync(storeId, refresh: false, cancellationToken).ConfigureAwait(false);
        var message = SignedMessage.Verify<T>(compact, keys, type, out var error);
        if (message is null && error == "signature.unknown_key" && refreshed.Add(storeId ?? ""))
        {
            keys = await KeysAsync(storeId, refresh: true, cancellationToken).ConfigureAwait(false);
            message = SignedMessage.Verify<T>(compact, keys, type, out error);
        }

        if (message is null)
        {
            var signer = storeId is null ? "the operator" : $"store {storeId}";
            throw new WalletException(
                WalletErrors.Signature(name, error ?? "signature.malformed"),
                $"The {display} is not signed by {signer} as registered with the operator ({error}). The wallet stops here.",
                settlementId: settlementId);
        }

        _prompt.Progress($"Verified the {display}: signed by {(storeId is null ? "the operator" : $"store {storeId}")}, key {Jws.PeekKeyId(compact)}");
        return message;
    }

    private Task<JsonWebKeySet> KeysAsync(string? storeId, bool refresh, CancellationToken cancellationToken) =>
        storeId is null
            ? _operator.OperatorKeysAsync(refresh, cancellationToken)
            : _operator.StoreKeysAsync(storeId, refresh, cancellationToken);

    private static CatalogItemView PickItem(CatalogResponse catalog, PurchaseRequest request)
    {
        var matches = catalog.Items
            .Where(i => i is not null && string.Equals(i.Sku, request.Sku, StringComparison.Ordinal)
                && (request.StoreId is null || string.Equals(i.StoreId, request.StoreId, StringComparison.Ordinal)))
            .ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new WalletException(WalletErrors.ItemUnknown, request.StoreId is null
                ? $"The store's catalog has no article {request.Sku}."
                : $"The catalog has no article {request.Sku} from store {request.StoreId}."),
            _ => throw new WalletException(WalletErrors.ItemAmbiguous, $"Several stores sell {request.Sku} ({string.Join(", ", matches.Select(m => m.StoreId))}); choose one with --store-id."),
        };
    }

    private static void CheckEstimate(EstimateResponse estimate, OrderRequest order)
    {
        // JSON's null elements pass the serializer's nullability checks; a list holding one is malformed.
        // A line of zero or less would let a positive total hide a charge the person did not see.
        if (estimate.Lines.Any(l => l is null || l.Quantity <= 0 || !l.Amount.IsPositive)
            || !string.Equals(estimate.StoreId, order.StoreId, StringComparison.Ordinal)
            || !SameItems(estimate.Lines.Select(l => (l.Sku, l.Quantity)), order)
            || !estimate.Total.IsPositive
            || !TrySum(estimate.Lines.Select(l => l.Amount), estimate.Total.Currency, out var sum) || sum != estimate.Total)
        {
            throw new WalletException(WalletErrors.EstimateMismatch, "The store's estimate does not match what you asked for, or its lines do not add up to its total.");
        }
    }

    private void CheckBill(Bill bill, OrderCreatedResponse created, OrderRequest order, EstimateResponse estimate)
    {
        Mismatch(BillName, null, "order number", created.OrderNo, bill.OrderNo);
        Mismatch(BillName, null, "store", order.StoreId, bill.StoreId);
        Mismatch(BillName, null, "amount", estimate.Total, bill.Amount);
        var linesMatch = bill.Items.All(i => i is not null) && bill.Items.Count == estimate.Lines.Count
            && bill.Items.All(i => estimate.Lines.Any(l => string.Equals(l.Sku, i.Sku, StringComparison.Ordinal) && l.Quantity == i.Quantity && l.Amount == i.Amount));
        // AddsUp: every line positive, summed with checked arithmetic, equal to the amount.
        if (!linesMatch || !bill.AddsUp() || !SameItems(bill.Items.Select(i => (i.Sku, i.Quantity)), order))
        {
            throw new WalletException(WalletErrors.BillMismatch, "The bill's items differ from what you asked for and the store estimated. Nothing was paid.");
        }

        CheckExpiry(bill);
    }

    private void CheckExpiry(Bill bill)
    {
        var now = _time.GetUtcNow();
        if (bill.ExpiresAt <= now)
        {
            throw new WalletException(WalletErrors.BillExpired, $"The bill expired at {bill.ExpiresAt:u}. Nothing was paid; order again.");
        }
    }

    private static void CheckSettlementInfo(SettlementInfo info, Guid settlementId, CardGreeting greeting, Money cardBalance, Bill bill, string billJws, byte[] debitBytes)
    {
        Mismatch(SettlementInfoName, settlementId, "settlement id", settlementId, info.SettlementId);
        Mismatch(SettlementInfoName, settlementId, "card", greeting.CardId.Digits, info.CardId, shown: greeting.CardId.Masked);
        Mismatch(SettlementInfoName, settlementId, "amount", bill.Amount, info.Amount);
        Mismatch(SettlementInfoName, settlementId, "bill digest", SignedMessage.Digest(billJws), info.BillDigest);
        Mismatch(SettlementInfoName, settlementId, "debit digest", Base64Url.EncodeToString(SHA256.HashData(debitBytes)), info.DebitDigest);

        // BI is the card's readout that reached the operator under the greeting's MAC: it must be what the card told the wallet.
        Mismatch(SettlementInfoName, settlementId, "balance", cardBalance, info.Balance);
    }

    private static void CheckCompletionNotice(CompletionNotice acn, Guid settlementId, Bill bill, string billJws)
    {
        Mismatch(CompletionNoticeName, settlementId, "settlement id", settlementId, acn.SettlementId);
        Mismatch(CompletionNoticeName, settlementId, "order number", bill.OrderNo, acn.OrderNo);
        Mismatch(CompletionNoticeName, settlementId, "store", bill.StoreId, acn.StoreId);
        Mismatch(CompletionNoticeName, settlementId, "mall", bill.MallId, acn.MallId);
        Mismatch(CompletionNoticeName, settlementId, "amount", bill.Amount, acn.Amount);
        Mismatch(CompletionNoticeName, settlementId, "bill digest", SignedMessage.Digest(billJws), acn.BillDigest);
    }

    private static void CheckReceipt(Receipt receipt, Guid settlementId, Bill bill, string acnJws)
    {
        Mismatch(ReceiptName, settlementId, "settlement id", settlementId, receipt.SettlementId);
        Mismatch(ReceiptName, settlementId, "order number", bill.OrderNo, receipt.OrderNo);
        Mismatch(ReceiptName, settlementId, "store", bill.StoreId, receipt.StoreId);
        Mismatch(ReceiptName, settlementId, "amount", bill.Amount, receipt.Amount);
        Mismatch(ReceiptName, settlementId, "completion digest", SignedMessage.Digest(acnJws), receipt.CompletionDigest);
    }

    // One field of a signed message compared with what this purchase expects.
    private static void Mismatch<T>(string name, Guid? settlementId, string field, T expected, T actual, string? shown = null)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            var what = shown is null ? $"{actual} where {expected} was expected" : $"another value than {shown}";
            throw new WalletException(name + ".mismatch", $"The {Display(name)}'s {field} does not belong to this purchase: {what}. The wallet stops here.", settlementId: settlementId);
        }
    }

    private static string Display(string name) => name switch
    {
        BillName => "bill",
        SettlementInfoName => "settlement information",
        CompletionNoticeName => "completion notice",
        _ => "receipt",
    };

    private static bool SameItems(IEnumerable<(string Sku, int Quantity)> items, OrderRequest order)
    {
        var given = items.OrderBy(i => i.Sku, StringComparer.Ordinal).ToList();
        var asked = order.Items.Select(i => (i.Sku, i.Quantity)).OrderBy(i => i.Sku, StringComparer.Ordinal).ToList();
        return given.SequenceEqual(asked);
    }

    private static bool TrySum(IEnumerable<Money> amounts, Currency currency, out Money sum)
    {
        sum = Money.Zero(currency);
        try
        {
            foreach (var amount in amounts)
            {
                sum += amount;
            }

            return true;
        }
        catch (Exception e) when (e is CurrencyMismatchException or OverflowException or InvalidOperationException)
        {
            return false;
        }
    }

    // The operator's commands pass through the wallet unread, but they must at least be the commands
    // they claim to be. Returns the bytes as received too: SIG2's debit digest is over exactly those.
    private static (CommandApdu Command, byte[] Bytes) DecodeCommand(string? text, byte instruction, string name, Guid settlementId)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(text ?? "");
        }
        catch (FormatException e)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not base64.", settlementId: settlementId, innerException: e);
        }

        if (!CommandApdu.TryParse(bytes, out var command) || command.Cla != PurseInstruction.ClaSecured || command.Ins != instruction)
        {
            throw new WalletException(WalletErrors.OperatorMalformed, $"The operator's {name} is not a secured {name} command.", settlementId: settlementId);
        }

        Debug.Assert(command.ToBytes().AsSpan().SequenceEqual(bytes), "A short APDU has one encoding.");
        return (command, bytes);
    }
}
