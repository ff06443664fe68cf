using System.Net.Http.Json;
using Microsoft.Extensions.Logging;
using OpenPurse.Operator.Registry;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Settlement;

/// <summary>
/// Delivers the ACN to the store (or its mall) and brings back the store's receipt (ST19, ST112).
/// Bounded in time: a slow store does not hold the wallet; the wallet then brings the ACN itself.
/// </summary>
internal sealed partial class StoreNotifier(HttpClient http, StoreRegistry stores, ILogger<StoreNotifier> logger)
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public async Task<string?> DeliverAsync(string storeId, string completionNotice, CancellationToken cancellationToken)
    {
        var found = await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false);
        if (found?.Store.NotifyUrl is not { } url)
        {
            return null;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var response = await http.PostAsJsonAsync(url, new CompletionDelivery(completionNotice), ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                LogRefused(storeId, (int)response.StatusCode);
                return null;
            }

            var delivery = await response.Content.ReadFromJsonAsync<ReceiptDelivery>(ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            return delivery?.Receipt;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
        {
            // A refused TLS handshake (SecureConnectionError) is named as such: it means the store's
            // certificate is not from the deployment's CA or not for its address, not that it is down.
            LogUnreachable(storeId, e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http ? http.HttpRequestError.ToString() : e.GetType().Name);
            return null;
        }
    }

    /// <summary>
    /// Tells the store a settlement is not paid: <c>POST voids</c> beside its completions address
    /// (<c>…/v1/operator/voids</c>). True when the store acknowledged (2xx).
    /// </summary>
    public async Task<bool> DeliverVoidAsync(string storeId, string voidNotice, CancellationToken cancellationToken)
    {
        var found = await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false);
        if (found?.Store.NotifyUrl is not { } url)
        {
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var response = await http.PostAsJsonAsync(new Uri(new Uri(url), "voids"), new VoidDelivery(voidNotice), ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                LogRefused(storeId, (int)response.StatusCode);
            }

            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            LogUnreachable(storeId, e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http ? http.HttpRequestError.ToString() : e.GetType().Name);
            return false;
        }
    }

    /// <summary>
    /// Asks a store for its statement of what it recorded as paid: <c>GET statements/{storeId}</c>
    /// beside its completions address, with the operator's signed <paramref name="query"/>. The
    /// statement's compact JWS, or why there is none.
    /// </summary>
    public async Task<(string? Statement, string? Error)> FetchStatementAsync(StoreRecord store, string query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.NotifyUrl is not { } url)
        {
            return (null, "the store registered no address for the operator");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(url), "statements/" + Uri.EscapeDataString(store.StoreId)));
            request.Headers.Add(StatementQuery.Header, query);
            using var response = await http.SendAsync(request, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return (null, $"the store answered HTTP {(int)response.StatusCode}");
            }

            var delivery = await response.Content.ReadFromJsonAsync<StatementDelivery>(ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            return delivery?.Statement is { } statement ? (statement, null) : (null, "the store's answer holds no statement");
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
        {
            return (null, "the store did not answer (" + (e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http ? http.HttpRequestError.ToString() : e.GetType().Name) + ")");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Store {StoreId} refused the completion notice with HTTP {Status}")]
    private partial void LogRefused(string storeId, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Store {StoreId} did not take the settlement's outcome ({Error}); the sweeper tells it again")]
    private partial void LogUnreachable(string storeId, string error);
}
