using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Http;

/// <summary>
/// The operator's public API as the wallet uses it: the two settlement round trips, and the key
/// sets that verify SIG1–SIG4. The wallet trusts the operator's registry, not the store, for a
/// store's keys.
/// </summary>
internal sealed class OperatorApi
{
    /// <summary>The most key sets one wallet keeps: the operator's and a few stores'.</summary>
    private const int KeySetsMax = 64;

    private readonly PartyClient _client;
    private readonly Dictionary<string, JsonWebKeySet> _keySets = new(StringComparer.Ordinal);

    public OperatorApi(HttpClient http) => _client = new PartyClient(http, "operator", ProtocolJson.Options);

    /// <summary>Settlement requests sent (round trips 1 and 2, retries included).</summary>
    public int SettlementRequests { get; private set; }

    /// <summary>Key set requests sent (cached sets cost none).</summary>
    public int KeySetRequests { get; private set; }

    /// <summary>Round trip 1: the bill and the card's greeting in, the card commands (and SIG2) out.</summary>
    public Task<StartSettlementResponse> StartAsync(StartSettlementRequest request, CancellationToken cancellationToken)
    {
        SettlementRequests++;
        return _client.PostAsync<StartSettlementResponse>("v1/settlements", request, cancellationToken);
    }

    /// <summary>Round trip 2: the card's completion notice in, ACN+SIG3 (and the receipt) out.</summary>
    public Task<CompleteSettlementResponse> CompleteAsync(Guid settlementId, CompleteSettlementRequest request, CancellationToken cancellationToken)
    {
        SettlementRequests++;
        return _client.PostAsync<CompleteSettlementResponse>($"v1/settlements/{settlementId:D}/completion", request, cancellationToken);
    }

    /// <summary>The card online outside a purchase: what it left unfinished is resolved, and a CREDIT comes when value is owed to it.</summary>
    public Task<CardSyncResponse> SyncAsync(CardSyncRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<CardSyncResponse>("v1/cards/sync", request, cancellationToken);

    /// <summary>The card's answer to a CREDIT of <see cref="SyncAsync"/>.</summary>
    public Task<SettlementOutcome> CompleteCreditAsync(Guid valueUpdateId, CompleteSettlementRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<SettlementOutcome>($"v1/cards/credits/{valueUpdateId:D}/completion", request, cancellationToken);

    /// <summary>The credit authorizer's keys, signed by the operator (a compact JWS of <see cref="AuthorizerKeys"/>).</summary>
    public async Task<string> AuthorizerKeysAsync(CancellationToken cancellationToken) =>
        (await _client.GetAsync<AuthorizerKeysResponse>("v1/topups/authorizer-keys", cancellationToken).ConfigureAwait(false)).Keys;

    /// <summary>A top-up: the card's greeting and the encrypted card data in, the CREDIT and SIG5 out once the charge is authorized.</summary>
    public Task<TopUpResponse> TopUpAsync(TopUpRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<TopUpResponse>("v1/topups", request, cancellationToken);

    /// <summary>The card's answer to a top-up's CREDIT.</summary>
    public Task<TransferResponse> TransferAsync(TransferRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<TransferResponse>("v1/transfers", request, cancellationToken);

    public Task<TransferView> CompleteTransferAsync(Guid transferId, CompleteSettlementRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<TransferView>($"v1/transfers/{transferId:D}/completion", request, cancellationToken);

    public Task<CashOutResponse> CashOutAsync(CashOutRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<CashOutResponse>("v1/cashouts", request, cancellationToken);

    public Task<CashOutView> CompleteCashOutAsync(Guid cashOutId, CompleteSettlementRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<CashOutView>($"v1/cashouts/{cashOutId:D}/completion", request, cancellationToken);

    public Task<TopUpView> CompleteTopUpAsync(Guid topUpId, CompleteSettlementRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<TopUpView>($"v1/topups/{topUpId:D}/completion", request, cancellationToken);

    /// <summary>The operator's own keys (SIG2, SIG3, SIG5).</summary>
    public Task<JsonWebKeySet> OperatorKeysAsync(bool refresh, CancellationToken cancellationToken) =>
        KeySetAsync(".well-known/jwks.json", refresh, cancellationToken);

    /// <summary>
    /// A message the operator signed, verified with its keys: fetched again once when the signing key
    /// is unknown (the operator rotated it). Null, with the reason, when it does not verify.
    /// </summary>
    public async Task<(T? Message, string? Error)> VerifySignedAsync<T>(string? compact, string type, CancellationToken cancellationToken)
        where T : class
    {
        var message = SignedMessage.Verify<T>(compact, await OperatorKeysAsync(refresh: false, cancellationToken).ConfigureAwait(false), type, out var error);
        if (message is null && error == "signature.unknown_key")
        {
            message = SignedMessage.Verify<T>(compact, await OperatorKeysAsync(refresh: true, cancellationToken).ConfigureAwait(false), type, out error);
        }

        return (message, error);
    }

    /// <summary>The keys the operator has registered for a store (SIG1, SIG4).</summary>
    public Task<JsonWebKeySet> StoreKeysAsync(string storeId, bool refresh, CancellationToken cancellationToken) =>
        KeySetAsync($"v1/stores/{Uri.EscapeDataString(storeId)}/jwks", refresh, cancellationToken);

    private async Task<JsonWebKeySet> KeySetAsync(string path, bool refresh, CancellationToken cancellationToken)
    {
        if (!refresh && _keySets.TryGetValue(path, out var cached))
        {
            return cached;
        }

        KeySetRequests++;
        var json = await _client.GetTextAsync(path, new Dictionary<string, string>(), PartyClient.JsonBodyBytesMax, cancellationToken).ConfigureAwait(false);
        JsonWebKeySet set;
        try
        {
            set = JsonWebKeySet.Parse(json);
        }
        catch (FormatException e)
        {
            throw new WalletException(WalletErrors.KeysUnavailable, $"The operator's key set at {path} cannot be read: {e.Message}", innerException: e);
        }

        if (_keySets.Count >= KeySetsMax)
        {
            _keySets.Clear();
        }

        _keySets[path] = set;
        return set;
    }
}
