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

    /// <summary>
    /// The longest answer taken from a store (a signed JWS is at most 64 KiB, in its JSON envelope):
    /// a store that sends more is refused, not read into memory.
    /// </summary>
    public const int ResponseLengthMax = 96 * 1024;

    /// <summary>Tells the store a settlement is paid (its ACN); acknowledged with the receipt it answers.</summary>
    public async Task<StoreAnswer> DeliverAsync(string storeId, string completionNotice, CancellationToken cancellationToken)
    {
        var found = await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false);
        if (found?.Store.NotifyUrl is not { } url)
        {
            return StoreAnswer.NoAddress;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var response = await http.PostAsJsonAsync(url, new CompletionDelivery(completionNotice), ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                LogRefused(storeId, (int)response.StatusCode);
                return await StoreAnswer.OfFailureAsync(response, timeout.Token).ConfigureAwait(false);
            }

            var delivery = await response.Content.ReadFromJsonAsync<ReceiptDelivery>(ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            return delivery?.Receipt is { } receipt ? StoreAnswer.Acknowledged(receipt) : StoreAnswer.NoReceipt;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
        {
            // A refused TLS handshake (SecureConnectionError) is named as such: it means the store's
            // certificate is not from the deployment's CA or not for its address, not that it is down.
            var error = e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http ? http.HttpRequestError.ToString() : e.GetType().Name;
            LogUnreachable(storeId, error);
            return e is System.Text.Json.JsonException ? StoreAnswer.NoReceipt : StoreAnswer.Unreachable(error);
        }
    }

    /// <summary>
    /// Tells the store a settlement is not paid: <c>POST voids</c> beside its completions address
    /// (<c>…/v1/operator/voids</c>). Acknowledged by any 2xx.
    /// </summary>
    public async Task<StoreAnswer> DeliverVoidAsync(string storeId, string voidNotice, CancellationToken cancellationToken)
    {
        var found = await stores.FindAsync(storeId, cancellationToken).ConfigureAwait(false);
        if (found?.Store.NotifyUrl is not { } url)
        {
            return StoreAnswer.NoAddress;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            using var response = await http.PostAsJsonAsync(new Uri(new Uri(url), "voids"), new VoidDelivery(voidNotice), ProtocolJson.Options, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                LogRefused(storeId, (int)response.StatusCode);
                return await StoreAnswer.OfFailureAsync(response, timeout.Token).ConfigureAwait(false);
            }

            return StoreAnswer.Acknowledged(null);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            var error = e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } http ? http.HttpRequestError.ToString() : e.GetType().Name;
            LogUnreachable(storeId, error);
            return StoreAnswer.Unreachable(error);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Store {StoreId} refused the settlement's outcome with HTTP {Status}")]
    private partial void LogRefused(string storeId, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Store {StoreId} did not take the settlement's outcome ({Error}); the sweeper tells it again")]
    private partial void LogUnreachable(string storeId, string error);
}

/// <summary>How a store answered an outcome it was told.</summary>
internal enum StoreAnswerKind
{
    /// <summary>It took the outcome (2xx; for an ACN, with a receipt).</summary>
    Acknowledged,

    /// <summary>It answered, and said no: a 4xx, or an ACN answered without a receipt. Telling it again is unlikely to change its mind.</summary>
    Refused,

    /// <summary>It could not be reached, timed out, or failed (5xx): telling it again may work.</summary>
    Unreachable,
}

/// <summary>A store's answer to an outcome, and a short account of it to keep with the settlement.</summary>
/// <param name="Kind">What the answer means for the sweeper.</param>
/// <param name="Summary">E.g. <c>HTTP 422 completion.mismatch</c> or <c>ConnectionError</c>: no more than a status, a code and an error name.</param>
/// <param name="Receipt">The receipt an ACN was answered with, not yet checked.</param>
internal sealed record StoreAnswer(StoreAnswerKind Kind, string Summary, string? Receipt = null)
{
    /// <summary>The most of a problem body read for its code: the code is short, and the body is the store's, so hostile.</summary>
    private const int ProblemLengthMax = 4096;

    private const int CodeLengthMax = 64;

    /// <summary>The store has no address for outcomes (it is told nothing; not counted against it).</summary>
    public static StoreAnswer NoAddress { get; } = new(StoreAnswerKind.Unreachable, "no address");

    /// <summary>An ACN answered with 2xx but no receipt.</summary>
    public static StoreAnswer NoReceipt { get; } = new(StoreAnswerKind.Refused, "no receipt");

    /// <summary>An ACN answered with a receipt the operator does not accept.</summary>
    public static StoreAnswer ReceiptRefused { get; } = new(StoreAnswerKind.Refused, "receipt.invalid");

    public static StoreAnswer Acknowledged(string? receipt) => new(StoreAnswerKind.Acknowledged, "acknowledged", receipt);

    public static StoreAnswer Unreachable(string error) => new(StoreAnswerKind.Unreachable, error);

    /// <summary>A non-2xx answer: a 4xx refuses (with the problem's code when it has one), anything else counts as unreachable.</summary>
    public static async Task<StoreAnswer> OfFailureAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        var status = (int)response.StatusCode;
        if (status is < 400 or >= 500)
        {
            return new(StoreAnswerKind.Unreachable, $"HTTP {status}");
        }

        var code = await ProblemCodeAsync(response, cancellationToken).ConfigureAwait(false);
        return new(StoreAnswerKind.Refused, code is null ? $"HTTP {status}" : $"HTTP {status} {code}");
    }

    // The problem's "code", if the body is a small JSON object with a plain one; anything else is left out.
    private static async Task<string?> ProblemCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var buffer = new byte[ProblemLengthMax];
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var length = await body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            using var problem = System.Text.Json.JsonDocument.Parse(buffer.AsMemory(0, length));
            return problem.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && problem.RootElement.TryGetProperty("code", out var code) && code.ValueKind == System.Text.Json.JsonValueKind.String
                && code.GetString() is { Length: > 0 and <= CodeLengthMax } text && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':')
                ? text
                : null;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or HttpRequestException or IOException or InvalidOperationException)
        {
            return null;
        }
    }
}
