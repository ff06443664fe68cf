using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenPurse.Card;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Channel;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;

namespace OpenPurse.Wallet.Tests.Fakes;

/// <summary>
/// The operator as its API contract describes it, with the security module played by the test: a
/// master key from which cards' keys are diversified, real card sessions, SIG2 and SIG3 under a test
/// key. Hooks let a test make it lie in each way the wallet must catch.
/// </summary>
internal sealed class FakeOperator : FakeParty
{
    private readonly AesCmac _master = new(RandomNumberGenerator.GetBytes(16));
    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, Pending> _pending = [];
    private readonly HashSet<string> _seenOrders = new(StringComparer.Ordinal);
    private readonly Dictionary<Guid, PendingTopUp> _topUps = [];
    private readonly Dictionary<Guid, PendingTopUp> _decreases = [];
    private readonly List<TopUpRequest> _topUpRequests = [];
    private readonly List<CardData> _cardData = [];
    private readonly ECDiffieHellman _authorizerKey = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
    private FakeStore? _store;

    public EcdsaSigningKey Key { get; } = EcdsaSigningKey.Generate("operator-1");

    /// <summary>
    /// A key the operator activated (docs/operations.md, "Rotating keys"): published beside
    /// <see cref="Key"/>, and signing the ACN (SIG3), as on an operator where the activation came
    /// between a purchase's two round trips.
    /// </summary>
    public EcdsaSigningKey? ActivatedKey { get; set; }

    /// <summary><see cref="Key"/> retired: no longer published (a node that still signs with it is what the wallet must catch).</summary>
    public bool KeyRetired { get; set; }

    public JsonWebKeySet KeySet => new([.. KeyRetired ? [] : new[] { Key.PublicKey }, .. ActivatedKey is { } activated ? new[] { activated.PublicKey } : []]);

    /// <summary>Added to the bill's amount in the DEBIT the operator builds (a cheating operator).</summary>
    public long DebitExtraMinor { get; set; }

    /// <summary>Changes SIG2's contents before signing.</summary>
    public Func<SettlementInfo, SettlementInfo>? EditSettlementInfo { get; set; }

    /// <summary>Changes the compact SIG2 after signing.</summary>
    public Func<string, string>? TamperSettlementInfo { get; set; }

    /// <summary>Changes the compact ACN (SIG3) after signing.</summary>
    public Func<string, string>? TamperCompletionNotice { get; set; }

    /// <summary>Changes the EXTERNAL AUTHENTICATE bytes.</summary>
    public Func<byte[], byte[]>? TamperExternalAuthenticate { get; set; }

    /// <summary>Changes the DEBIT bytes after SIG2 was made over them.</summary>
    public Func<byte[], byte[]>? TamperDebit { get; set; }

    /// <summary>The store did not answer the operator: round trip 2 carries no receipt.</summary>
    public bool OmitReceipt { get; set; }

    /// <summary>How many completion requests fail with 503 before one succeeds.</summary>
    public int FailCompletions { get; set; }

    /// <summary>The Retry-After (whole seconds) of those 503s, as a node whose database fails over sends it; none when null.</summary>
    public int? FailedCompletionRetryAfter { get; set; }

    /// <summary>Round trip 1 is refused with this problem code.</summary>
    public string? RefuseStartWith { get; set; }

    /// <summary>Changes SIG5 of a top-up's CREDIT before signing.</summary>
    public Func<ValueUpdate, ValueUpdate>? EditValueUpdate { get; set; }

    /// <summary>Changes the compact JWS of the authorizer's keys after signing.</summary>
    public Func<string, string>? TamperAuthorizerKeys { get; set; }

    /// <summary>How many top-ups are answered 503 authorizer.unavailable before one is approved.</summary>
    public int UnavailableTopUps { get; set; }

    /// <summary>Changes the value decrease information before it is signed (a lying operator).</summary>
    public Func<ValueDecrease, ValueDecrease>? EditValueDecrease { get; set; }

    /// <summary>Makes the DEBIT's order (and the digest it signs) for this payee instead of the one asked for.</summary>
    public string? DebitForPayee { get; set; }

    /// <summary>The transfers' and cash-outs' completions reported, by id.</summary>
    public int DecreaseCompletions { get; private set; }

    /// <summary>Top-ups are refused with this problem code (as the authorizer's decline or a limit would be).</summary>
    public string? RefuseTopUpWith { get; set; }

    /// <summary>Each top-up request received, in order.</summary>
    public IReadOnlyList<TopUpRequest> TopUpRequests
    {
        get
        {
            lock (_lock)
            {
                return [.. _topUpRequests];
            }
        }
    }

    /// <summary>The card data of each top-up, as the authorizer would decrypt it.</summary>
    public IReadOnlyList<CardData> CardData
    {
        get
        {
            lock (_lock)
            {
                return [.. _cardData];
            }
        }
    }

    public void Register(FakeStore store) => _store = store;

    public CardPersonalization Personalize(CardId cardId) =>
        new(cardId, 0x01, Diversify(CardKeyUsage.Encryption, cardId), Diversify(CardKeyUsage.Mac, cardId), 1_000_000);

    /// <summary>The issuing station's load, as the operator does it: a whole CREDIT session.</summary>
    public void TopUp(Func<CommandApdu, ResponseApdu> send, Money amount)
    {
        Assert.True(send(CardHostSession.Select()).IsOk);
        var challenge = RandomNumberGenerator.GetBytes(Scp03.ChallengeLength);
        var answer = send(CardHostSession.InitializeUpdate(challenge));
        Assert.True(CardGreeting.TryParse(answer.Data, out var greeting));
        using var session = Open(challenge, greeting);
        Assert.True(send(session.ExternalAuthenticate()).IsOk);
        var loadId = Guid.NewGuid();
        var order = new ValueCommand(loadId, CreditDigests.Load(loadId), amount, greeting.Status.Counter);
        Assert.Equal(StatusWord.Ok, send(CardHostSession.WithApproval(session.Credit(order), order.ToApproval())).Status);
    }

    protected override void Dispose(bool disposing)
    {
        _master.Dispose();
        Key.Dispose();
        _authorizerKey.Dispose();
        lock (_lock)
        {
            foreach (var pending in _pending.Values)
            {
                pending.Session.Dispose();
            }

            foreach (var topUp in _topUps.Values)
            {
                topUp.Session.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    protected override async Task<HttpResponseMessage> HandleAsync(HttpMethod method, string[] path, HttpRequestMessage request)
    {
        switch (method.Method, path)
        {
            case ("GET", [".well-known", "jwks.json"]):
                return Text(KeySet.ToJson(), "application/jwk-set+json");

            case ("GET", ["v1", "stores", var storeId, "jwks"]):
                return _store is not null && storeId == FakeStore.Id ? Text(_store.KeySet.ToJson(), "application/jwk-set+json") : NotFound();

            case ("POST", ["v1", "settlements"]):
                return Start(await ReadAsync<StartSettlementRequest>(request));

            case ("POST", ["v1", "settlements", var id, "completion"]):
                return Complete(Guid.Parse(id), await ReadAsync<CompleteSettlementRequest>(request));

            case ("POST", ["v1", "cards", "sync"]):
                return Sync(await ReadAsync<CardSyncRequest>(request));

            case ("GET", ["v1", "topups", "authorizer-keys"]):
                return AuthorizerKeys();

            case ("POST", ["v1", "topups"]):
                return TopUp(await ReadAsync<TopUpRequest>(request));

            case ("POST", ["v1", "topups", var id, "completion"]):
                return CompleteTopUp(Guid.Parse(id), await ReadAsync<CompleteSettlementRequest>(request));

            case ("POST", ["v1", "transfers"]):
                var transfer = await ReadAsync<TransferRequest>(request);
                var (transferDebit, payeeCard) = Decrease(ValueDecreasePurposes.Transfer, transfer.TransferId, transfer.Amount, transfer.PayeeCard,
                    CardId.Parse(transfer.PayeeCard).Masked, transfer.HostChallenge, transfer.CardGreeting);
                return Json(new TransferResponse(transfer.TransferId, "debiting", transfer.Amount, payeeCard, transferDebit));

            case ("POST", ["v1", "cashouts"]):
                var cashOut = await ReadAsync<CashOutRequest>(request);
                Assert.Equal(IbanError.None, Iban.TryNormalize(cashOut.Iban, out var iban));
                var (cashOutDebit, payeeIban) = Decrease(ValueDecreasePurposes.CashOut, cashOut.CashOutId, cashOut.Amount, iban, Iban.Mask(iban), cashOut.HostChallenge, cashOut.CardGreeting);
                return Json(new CashOutResponse(cashOut.CashOutId, "debiting", cashOut.Amount, payeeIban, cashOutDebit));

            case ("POST", ["v1", "transfers" or "cashouts", var id, "completion"]):
                var decreaseId = Guid.Parse(id);
                var completion = await ReadAsync<CompleteSettlementRequest>(request);
                PendingTopUp? pending;
                lock (_lock)
                {
                    _decreases.TryGetValue(decreaseId, out pending);
                    DecreaseCompletions++;
                }

                var answer = ResponseApdu.Parse(Convert.FromBase64String(completion.CardAnswer));
                return pending is not null && pending.Session.TryUnwrap(answer, out var plain) && CardLogRecord.TryParse(plain.Data, out var record)
                    ? path[1] == "transfers"
                        ? Json(new TransferView(decreaseId, "debited", pending.Amount, pending.LastFour, record.BalanceAfter))
                        : Json(new CashOutView(decreaseId, "debited", pending.Amount, pending.LastFour, record.BalanceAfter))
                    : Problem(HttpStatusCode.UnprocessableEntity, "card.answer_invalid", "The card's answer does not verify.");

            default:
                return NotFound();
        }
    }

    // Nothing is ever left open here: the sync only shows that the card came online.
    private static HttpResponseMessage Sync(CardSyncRequest request) =>
        CardGreeting.TryParse(Convert.FromBase64String(request.CardGreeting), out _)
            ? Json(new CardSyncResponse([], null))
            : Problem(HttpStatusCode.UnprocessableEntity, "card.greeting_malformed", "Not a greeting.");

    private HttpResponseMessage AuthorizerKeys()
    {
        using var keys = JsonDocument.Parse(new JsonWebKeySet([Jwe.PublicKeyOf(_authorizerKey, "authorizer-1")]).ToJson());
        var jws = SignedMessage.Sign(Key, new AuthorizerKeys(keys.RootElement.Clone(), DateTimeOffset.UtcNow), MessageTypes.AuthorizerKeys);
        return Json(new AuthorizerKeysResponse(TamperAuthorizerKeys is null ? jws : TamperAuthorizerKeys(jws)));
    }

    private HttpResponseMessage TopUp(TopUpRequest request)
    {
        var cardData = JsonSerializer.Deserialize<CardData>(Jwe.Decrypt(request.CardData, _authorizerKey, "authorizer-1"), ProtocolJson.Options)!;
        lock (_lock)
        {
            _topUpRequests.Add(request);
            _cardData.Add(cardData);
        }

        if (UnavailableTopUps > 0)
        {
            UnavailableTopUps--;
            return Problem(HttpStatusCode.ServiceUnavailable, "authorizer.unavailable", "The credit authorizer did not answer; send the same request again.");
        }

        if (RefuseTopUpWith is { } code)
        {
            return Problem(code == "topup.limit_exceeded" ? HttpStatusCode.UnprocessableContent : HttpStatusCode.PaymentRequired, code, code == "topup.limit_exceeded" ? "Above the card's daily top-up maximum: 5.00 EUR is left today." : "Refused by the test.");
        }

        Assert.True(CardGreeting.TryParse(Convert.FromBase64String(request.CardGreeting), out var greeting));
        var session = Open(Convert.FromBase64String(request.HostChallenge), greeting);
        var valueUpdateId = Guid.NewGuid();
        var orderDigest = SHA256.HashData(Encoding.UTF8.GetBytes("openpurse-topup:" + request.TopUpId.ToString("D")));
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var credit = session.Credit(new ValueCommand(valueUpdateId, orderDigest, request.Amount, greeting.Status.Counter)).ToBytes();
        var balance = greeting.Status.BalanceOf(request.Amount.Currency) ?? Money.Zero(request.Amount.Currency);
        var update = new ValueUpdate(valueUpdateId, greeting.CardId.Digits, request.Amount, balance, ValueUpdatePurposes.TopUp, request.TopUpId, Base64Url.EncodeToString(orderDigest), Base64Url.EncodeToString(SHA256.HashData(credit)));
        update = EditValueUpdate is null ? update : EditValueUpdate(update);
        var lastFour = cardData.Pan[^4..];
        lock (_lock)
        {
            _topUps[request.TopUpId] = new PendingTopUp(request.Amount, lastFour, session);
        }

        return Json(new TopUpResponse(request.TopUpId, "crediting", request.Amount, lastFour, new CardCredit(valueUpdateId, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(credit), SignedMessage.Sign(Key, update, MessageTypes.ValueUpdate))));
    }

    // A DEBIT for the card's session and its value decrease information, as the operator makes them.
    private (CardDebit Debit, string Payee) Decrease(string purpose, Guid id, Money amount, string payee, string payeeShown, string hostChallenge, string cardGreeting)
    {
        Assert.True(CardGreeting.TryParse(Convert.FromBase64String(cardGreeting), out var greeting));
        var session = Open(Convert.FromBase64String(hostChallenge), greeting);
        var orderDigest = ValueDecreasePurposes.OrderDigest(purpose, id, amount, DebitForPayee ?? payee);
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var debit = session.Debit(new ValueCommand(id, orderDigest, amount, greeting.Status.Counter)).ToBytes();
        var balance = greeting.Status.BalanceOf(amount.Currency) ?? Money.Zero(amount.Currency);
        var decrease = new ValueDecrease(id, greeting.CardId.Digits, amount, balance, purpose, id, payeeShown, Base64Url.EncodeToString(orderDigest), Base64Url.EncodeToString(SHA256.HashData(debit)));
        decrease = EditValueDecrease is null ? decrease : EditValueDecrease(decrease);
        lock (_lock)
        {
            _decreases[id] = new PendingTopUp(amount, payeeShown, session);
        }

        return (new CardDebit(id, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(debit), SignedMessage.Sign(Key, decrease, MessageTypes.ValueDecrease)), payeeShown);
    }

    private HttpResponseMessage CompleteTopUp(Guid topUpId, CompleteSettlementRequest request)
    {
        PendingTopUp? pending;
        lock (_lock)
        {
            _topUps.TryGetValue(topUpId, out pending);
        }

        if (pending is null)
        {
            return Problem(HttpStatusCode.NotFound, "topup.not_found", "No such top-up.");
        }

        var answer = ResponseApdu.Parse(Convert.FromBase64String(request.CardAnswer));
        return pending.Session.TryUnwrap(answer, out var plain) && CardLogRecord.TryParse(plain.Data, out var record)
            ? Json(new TopUpView(topUpId, "captured", pending.Amount, pending.LastFour, record.BalanceAfter))
            : Problem(HttpStatusCode.UnprocessableEntity, "card.answer_invalid", "The card's answer does not verify.");
    }

    private HttpResponseMessage Start(StartSettlementRequest request)
    {
        if (RefuseStartWith is { } code)
        {
            return Problem(HttpStatusCode.Conflict, code, "Refused by the test.");
        }

        var bill = SignedMessage.Verify<Bill>(request.Bill, _store!.KeySet, MessageTypes.Bill, out var error);
        if (bill is null)
        {
            return Problem(HttpStatusCode.UnprocessableEntity, "bill." + error, "SIG1 does not verify.");
        }

        lock (_lock)
        {
            if (!_seenOrders.Add(bill.OrderNo))
            {
                return Problem(HttpStatusCode.Conflict, "bill.replayed", "This bill was used already.");
            }
        }

        if (!CardGreeting.TryParse(Convert.FromBase64String(request.CardGreeting), out var greeting))
        {
            return Problem(HttpStatusCode.UnprocessableEntity, "card.greeting_malformed", "Not a greeting.");
        }

        var session = Open(SignedMessage.HostChallengeFor(request.Bill), greeting);
        var settlementId = Guid.NewGuid();
        var externalAuthenticate = session.ExternalAuthenticate().ToBytes();
        var amount = new Money(bill.Amount.MinorUnits + DebitExtraMinor, bill.Amount.Currency);
        var debit = session.Debit(new ValueCommand(settlementId, SignedMessage.DigestBytes(request.Bill), amount, greeting.Status.Counter)).ToBytes();
        string? info = null;
        if (request.Profile == SettlementProfile.Signed)
        {
            var balance = greeting.Status.BalanceOf(bill.Amount.Currency) ?? Money.Zero(bill.Amount.Currency);
            var message = new SettlementInfo(settlementId, greeting.CardId.Digits, balance, amount, SignedMessage.Digest(request.Bill), Base64Url.EncodeToString(SHA256.HashData(debit)));
            message = EditSettlementInfo is null ? message : EditSettlementInfo(message);
            info = SignedMessage.Sign(Key, message, MessageTypes.SettlementInfo);
            info = TamperSettlementInfo is null ? info : TamperSettlementInfo(info);
        }

        lock (_lock)
        {
            _pending[settlementId] = new Pending(request.Bill, bill, greeting, session);
        }

        externalAuthenticate = TamperExternalAuthenticate is null ? externalAuthenticate : TamperExternalAuthenticate(externalAuthenticate);
        debit = TamperDebit is null ? debit : TamperDebit(debit);
        return Json(new StartSettlementResponse(settlementId, Convert.ToBase64String(externalAuthenticate), Convert.ToBase64String(debit), info), HttpStatusCode.Created);
    }

    private HttpResponseMessage Complete(Guid settlementId, CompleteSettlementRequest request)
    {
        if (FailCompletions > 0)
        {
            FailCompletions--;
            var busy = Problem(HttpStatusCode.ServiceUnavailable, "operator.busy", "Try again.");
            if (FailedCompletionRetryAfter is { } seconds)
            {
                busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));
            }

            return busy;
        }

        Pending? pending;
        lock (_lock)
        {
            _pending.TryGetValue(settlementId, out pending);
        }

        if (pending is null)
        {
            return NotFound();
        }

        var answer = ResponseApdu.Parse(Convert.FromBase64String(request.CardAnswer));
        if (!pending.Session.TryUnwrap(answer, out var plain) || !CardLogRecord.TryParse(plain.Data, out var record))
        {
            return Problem(HttpStatusCode.UnprocessableEntity, "card.answer_invalid", "The PCN does not verify.");
        }

        var bill = pending.Bill;
        var acn = SignedMessage.Sign(
            ActivatedKey ?? Key,
            new CompletionNotice(settlementId, bill.OrderNo, bill.StoreId, bill.MallId, record.Amount, SignedMessage.Digest(pending.BillJws), pending.Greeting.CardId.Masked, record.Counter, DateTimeOffset.UtcNow),
            MessageTypes.CompletionNotice);
        var receipt = OmitReceipt ? null : _store!.IssueReceipt(acn);
        acn = TamperCompletionNotice is null ? acn : TamperCompletionNotice(acn);
        return Json(new CompleteSettlementResponse(acn, receipt));
    }

    private CardHostSession Open(byte[] hostChallenge, CardGreeting greeting)
    {
        using var enc = new AesCmac(Diversify(CardKeyUsage.Encryption, greeting.CardId));
        using var mac = new AesCmac(Diversify(CardKeyUsage.Mac, greeting.CardId));
        var session = CardHostSession.TryOpen(enc, mac, hostChallenge, greeting, out var error);
        Assert.True(session is not null, $"The fake security module refused the card: {error}");
        return session;
    }

    private byte[] Diversify(CardKeyUsage usage, CardId cardId)
    {
        var key = new byte[16];
        KeyDiversification.An10922Aes128(_master, KeyDiversification.CardKeyInput(usage, cardId), key);
        return key;
    }

    private sealed record Pending(string BillJws, Bill Bill, CardGreeting Greeting, CardHostSession Session);

    private sealed record PendingTopUp(Money Amount, string LastFour, CardHostSession Session);
}
