using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenPurse.Card;
using OpenPurse.Operator.Security;
using OpenPurse.Protocol;
using OpenPurse.Protocol.Apdu;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Protocol.Purse;
using OpenPurse.Store.Keys;
using OpenPurse.Wallet.Http;
using OpenPurse.Wallet.Purchase;
using OpenPurse.Wallet.Readers;

namespace OpenPurse.EndToEnd.Tests;

/// <summary>
/// The whole system for one test on one <see cref="IDeployment"/>: an issued and loaded card in a
/// reader that records every command on its way from the wallet, and the wallet's two HTTP clients
/// going through interceptors that record, count and rewrite the traffic. The test's own clients
/// and its own card connection (for balances and greetings) are not recorded.
/// </summary>
internal sealed class EndToEndKit : IAsyncDisposable
{
    private readonly IDeployment _deployment;
    private readonly ICardReader _cardReader;
    private bool _booksTamperedWith;

    private EndToEndKit(IDeployment deployment, ICardReader cardReader)
    {
        _deployment = deployment;
        _cardReader = cardReader;
        Reader = new RecordingReader(cardReader);
        WalletOperator = deployment.OperatorClient(OperatorTraffic);
        WalletStore = deployment.StoreClient(StoreTraffic);
        Operator = deployment.OperatorClient();
        Store = deployment.StoreClient();
    }

    public EmulatedCard Card => _deployment.Card;

    /// <summary>The reader the wallet uses: records each command and the card's answer.</summary>
    public RecordingReader Reader { get; }

    /// <summary>What the wallet sends to and receives from the operator.</summary>
    public Interceptor OperatorTraffic { get; } = new();

    /// <summary>What the wallet sends to and receives from the store.</summary>
    public Interceptor StoreTraffic { get; } = new();

    public HttpClient WalletOperator { get; }

    public HttpClient WalletStore { get; }

    /// <summary>The test's own client to the operator, not intercepted.</summary>
    public HttpClient Operator { get; }

    /// <summary>The test's own client to the store, not intercepted.</summary>
    public HttpClient Store { get; }

    public MemberKeys MemberKeys => _deployment.MemberKeys;

    public ISecurityModule Security => _deployment.Security;

    /// <summary>The kit over a started deployment, which it owns from here on (also when opening the card fails).</summary>
    public static async Task<EndToEndKit> OpenAsync(IDeployment deployment)
    {
        try
        {
            return new EndToEndKit(deployment, deployment.OpenCardReader());
        }
        catch
        {
            await deployment.DisposeAsync();
            throw;
        }
    }

    public static Money Eur(string amount) => Money.Parse(amount + " EUR");

    /// <summary>One purchase by the wallet, through the interceptors and the recording reader.</summary>
    public Task<PurchaseResult> BuyAsync(string sku, string storeId, SettlementProfile profile = SettlementProfile.Signed) =>
        new PurchaseFlow(WalletStore, WalletOperator, Reader, new AutoPrompt()).RunAsync(new PurchaseRequest(sku, StoreId: storeId, Profile: profile));

    /// <summary>The card's balance in euros: SELECT and GET DATA, straight on the card (not recorded).</summary>
    public Money Balance()
    {
        Assert.True(_cardReader.Transmit(CardHostSession.Select()).IsOk);
        var answer = _cardReader.Transmit(CardHostSession.GetData());
        if (!answer.IsOk || !PurseStatus.TryParse(answer.Data, out var status))
        {
            throw new InvalidOperationException($"GET DATA answered {answer}.");
        }

        return status.BalanceOf(Currency.Eur) ?? Money.Zero(Currency.Eur);
    }

    /// <summary>A real greeting from the card for a bill: SELECT and INITIALIZE UPDATE with the bill's host challenge, base64.</summary>
    public string Greeting(string bill)
    {
        Assert.True(_cardReader.Transmit(CardHostSession.Select()).IsOk);
        var answer = _cardReader.Transmit(CardHostSession.InitializeUpdate(SignedMessage.HostChallengeFor(bill)));
        Assert.True(answer.IsOk, $"INITIALIZE UPDATE answered {answer}");
        return Convert.ToBase64String(answer.Data);
    }

    /// <summary>An order placed at the store directly: its number and BILL+SIG1.</summary>
    public async Task<OrderCreatedResponse> OrderAsync(string storeId, string sku)
    {
        using var response = await Store.PostAsJsonAsync("/v1/orders", new { storeId, items = new[] { new { sku, quantity = 1 } } });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<OrderCreatedResponse>(ProtocolJson.Options))!;
    }

    /// <summary>Round trip 1, sent by the test itself with a real greeting from the card for the bill.</summary>
    public Task<Answer> StartSettlementAsync(string bill, SettlementProfile profile = SettlementProfile.Signed) =>
        PostAsync(Operator, "/v1/settlements", new StartSettlementRequest(bill, profile, Greeting(bill)));

    public static async Task<Answer> PostAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body, ProtocolJson.Options);
        return new Answer(response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The operator's settlement state (authorized, completed, voided), or null when there is no such settlement.</summary>
    /// <remarks>Asked as the store would: a query signed by each member store in turn, since only the settlement's own is answered.</remarks>
    public Task<string?> SettlementStateAsync(Guid settlementId) => SettlementStateAsync(Operator, MemberKeys, settlementId);

    /// <summary>As <see cref="SettlementStateAsync(Guid)"/>, through <paramref name="operatorClient"/>.</summary>
    public static async Task<string?> SettlementStateAsync(HttpClient operatorClient, MemberKeys memberKeys, Guid settlementId)
    {
        foreach (var storeId in memberKeys.StoreIds)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"v1/settlements/{settlementId}", UriKind.Relative));
            request.Headers.Add(SettlementReadProof.StoreHeader, SettlementReadProof.ForStore(memberKeys.For(storeId), settlementId, storeId, DateTimeOffset.UtcNow));
            using var response = await operatorClient.SendAsync(request);
            if (response.StatusCode != HttpStatusCode.NotFound)
            {
                Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
                return (await response.Content.ReadFromJsonAsync<SettlementView>(ProtocolJson.Options))!.State;
            }
        }

        return null;
    }

    /// <summary>The store's order state: billed or paid.</summary>
    public async Task<string> OrderStateAsync(string orderNo)
    {
        using var response = await Store.GetAsync($"/v1/orders/{Uri.EscapeDataString(orderNo)}");
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var view = await response.Content.ReadFromJsonAsync<JsonObject>();
        return (string)view!["state"]!;
    }

    public async Task<JsonWebKeySet> OperatorKeysAsync() =>
        JsonWebKeySet.Parse(await Operator.GetStringAsync("/.well-known/jwks.json"));

    /// <summary>
    /// For a test that changes the operator's books behind its back: the kit does not reconcile them
    /// when it is disposed.
    /// </summary>
    public void BooksTamperedWith() => _booksTamperedWith = true;

    /// <summary>
    /// Reconciles the operator's books (every test's money must balance, whatever it did), then
    /// stops the deployment; a ledger that does not reconcile fails the test with the differences.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        var books = _booksTamperedWith ? null : await _deployment.ReconcileAsync();
        WalletOperator.Dispose();
        WalletStore.Dispose();
        Operator.Dispose();
        Store.Dispose();
        (_cardReader as IDisposable)?.Dispose();
        await _deployment.DisposeAsync();
        Assert.True(books is null || books.IsClean, $"The operator's books do not reconcile after the test:\n{books?.ToText()}");
    }
}

/// <summary>An HTTP answer: status and body, and the problem code when it is a refusal (RFC 9457).</summary>
internal sealed record Answer(HttpStatusCode Status, string Body)
{
    public string? Code => Body.StartsWith('{') && JsonNode.Parse(Body) is JsonObject problem && problem["code"] is JsonValue code ? (string?)code : null;

    public T Read<T>() => JsonSerializer.Deserialize<T>(Body, ProtocolJson.Options)!;
}

/// <summary>One request and the server's answer, as the interceptor saw them (before any rewrite).</summary>
internal sealed record Exchange(string Method, string Path, string? RequestBody, HttpStatusCode Status, string ResponseBody);

/// <summary>
/// Sits between the wallet and a server on the real loopback connection: records every exchange and
/// rewrites the bodies of chosen answers, as a party in the middle of the network could. The
/// deployment gives it its inner handler (and with it the roots to trust).
/// </summary>
internal sealed class Interceptor : DelegatingHandler
{
    private readonly Lock _lock = new();
    private readonly List<Exchange> _exchanges = [];
    private readonly List<(string Method, Regex Path, Func<Exchange, string, string> Rewrite)> _rewrites = [];
    private readonly List<(string Method, Regex Path)> _losses = [];

    public IReadOnlyList<Exchange> Exchanges
    {
        get
        {
            lock (_lock)
            {
                return [.. _exchanges];
            }
        }
    }

    /// <summary>From now on, the answers to <paramref name="method"/> requests whose path matches reach the wallet rewritten.</summary>
    public void RewriteResponse(string method, [StringSyntax(StringSyntaxAttribute.Regex)] string pathPattern, Func<Exchange, string, string> rewrite)
    {
        lock (_lock)
        {
            _rewrites.Add((method, new Regex(pathPattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)), rewrite));
        }
    }

    /// <summary>From now on, <paramref name="method"/> requests whose path matches are lost on the way, as on a broken network.</summary>
    public void LoseRequests(string method, [StringSyntax(StringSyntaxAttribute.Regex)] string pathPattern)
    {
        lock (_lock)
        {
            _losses.Add((method, new Regex(pathPattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))));
        }
    }

    /// <summary>Requests reach their server again.</summary>
    public void StopLosing()
    {
        lock (_lock)
        {
            _losses.Clear();
        }
    }

    public int Count(string method, [StringSyntax(StringSyntaxAttribute.Regex)] string pathPattern) =>
        Exchanges.Count(e => e.Method == method && Regex.IsMatch(e.Path, pathPattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));

    /// <summary>The one exchange with that method and path; fails when there is none or more.</summary>
    public Exchange Single(string method, [StringSyntax(StringSyntaxAttribute.Regex)] string pathPattern) =>
        Assert.Single(Exchanges, e => e.Method == method && Regex.IsMatch(e.Path, pathPattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var requestBody = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        bool lost;
        lock (_lock)
        {
            lost = _losses.Any(l => l.Method == request.Method.Method && l.Path.IsMatch(request.RequestUri!.AbsolutePath));
        }

        if (lost)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, "The request was lost on the way.");
        }

        var response = await base.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        var exchange = new Exchange(request.Method.Method, request.RequestUri!.AbsolutePath, requestBody, response.StatusCode, body);
        List<Func<Exchange, string, string>> rewrites;
        lock (_lock)
        {
            _exchanges.Add(exchange);
            rewrites = [.. _rewrites.Where(r => r.Method == exchange.Method && r.Path.IsMatch(exchange.Path)).Select(r => r.Rewrite)];
        }

        if (rewrites.Count > 0)
        {
            var rewritten = rewrites.Aggregate(body, (current, rewrite) => rewrite(exchange, current));
            var content = new StringContent(rewritten, Encoding.UTF8);
            content.Headers.ContentType = response.Content.Headers.ContentType;
            response.Content.Dispose();
            response.Content = content;
        }

        return response;
    }
}

/// <summary>A reader that records every command and answer on their way to and from the card.</summary>
internal sealed class RecordingReader(ICardReader inner) : ICardReader
{
    private readonly List<(CommandApdu Command, ResponseApdu Answer)> _log = [];

    public string Name => inner.Name;

    public IReadOnlyList<(CommandApdu Command, ResponseApdu Answer)> Log => _log;

    /// <summary>The INS byte of every command, in order.</summary>
    public IReadOnlyList<byte> Instructions => [.. _log.Select(e => e.Command.Ins)];

    public ResponseApdu Transmit(CommandApdu command)
    {
        var answer = inner.Transmit(command);
        _log.Add((command, answer));
        return answer;
    }
}

/// <summary>One character or one byte changed, as in transit.</summary>
internal static class Tamper
{
    public const int Payload = 1;
    public const int Signature = 2;

    /// <summary>Changes the middle character of one part of a compact JWS (every bit of a middle base64url character counts).</summary>
    public static string OneCharacter(string compact, int part = Payload)
    {
        var parts = compact.Split('.');
        var text = parts[part];
        var i = text.Length / 2;
        parts[part] = string.Concat(text.AsSpan(0, i), text[i] == 'A' ? "B" : "A", text.AsSpan(i + 1));
        return string.Join('.', parts);
    }

    /// <summary>Flips the bits of one byte in the middle of a base64 command APDU's data, leaving its header as it was.</summary>
    public static string OneDataByte(string base64Apdu)
    {
        var bytes = Convert.FromBase64String(base64Apdu);
        var dataLength = bytes[4];
        bytes[5 + (dataLength / 2)] ^= 0xFF;
        return Convert.ToBase64String(bytes);
    }

    /// <summary>Changes one string member of a JSON body.</summary>
    public static string Member(string json, string name, Func<string, string> change)
    {
        var body = JsonNode.Parse(json)!.AsObject();
        body[name] = change((string)body[name]!);
        return body.ToJsonString();
    }

    /// <summary>Reads one string member of a JSON body.</summary>
    public static string Read(string json, string name) => (string)JsonNode.Parse(json)![name]!;
}
