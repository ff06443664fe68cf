using System.Text.Json;
using System.Text.Json.Serialization;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Http;

/// <summary>
/// The store's API as the wallet uses it: catalog, estimate, order (BILL+SIG1), the completion
/// notice when the operator brought no receipt, and the download.
/// </summary>
internal sealed class StoreApi
{
    /// <summary>The header that proves a download is paid for.</summary>
    public const string ReceiptHeader = "X-OpenPurse-Receipt";

    // The store's unsigned bodies (catalog, estimate) may grow members the wallet does not show;
    // whatever is signed is read strictly by SignedMessage.
    private static readonly JsonSerializerOptions s_json = CreateOptions();

    private readonly PartyClient _client;

    public StoreApi(HttpClient http) => _client = new PartyClient(http, "store", s_json);

    /// <summary>Requests sent to the store.</summary>
    public int Requests => _client.Requests;

    public Task<CatalogResponse> CatalogAsync(CancellationToken cancellationToken) =>
        _client.GetAsync<CatalogResponse>("v1/catalog", cancellationToken);

    public Task<EstimateResponse> EstimateAsync(OrderRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<EstimateResponse>("v1/estimates", request, cancellationToken);

    public Task<OrderCreatedResponse> OrderAsync(OrderRequest request, CancellationToken cancellationToken) =>
        _client.PostAsync<OrderCreatedResponse>("v1/orders", request, cancellationToken);

    /// <summary>Brings the ACN to the store itself; the store answers with its receipt (SIG4).</summary>
    public Task<ReceiptDelivery> DeliverCompletionAsync(string orderNo, CompletionDelivery delivery, CancellationToken cancellationToken) =>
        _client.PostAsync<ReceiptDelivery>($"v1/orders/{Uri.EscapeDataString(orderNo)}/completion", delivery, cancellationToken);

    /// <summary>The goods, against the receipt.</summary>
    public Task<string> DownloadAsync(string orderNo, string receipt, CancellationToken cancellationToken) =>
        _client.GetTextAsync(
            $"v1/orders/{Uri.EscapeDataString(orderNo)}/download",
            new Dictionary<string, string> { [ReceiptHeader] = receipt },
            PartyClient.ContentBytesMax,
            cancellationToken);

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(ProtocolJson.Options) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
