using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Store.Operator;

/// <summary>The store's calls to the operator's API: its key set, receipt delivery (ST112), refunds and their state.</summary>
internal sealed class OperatorClient(IHttpClientFactory httpClients)
{
    public const string HttpClientName = "OpenPurse.Operator";

    /// <summary>A published key set is a few kilobytes; the bound keeps a broken operator from filling memory.</summary>
    public const int ResponseLengthMax = 256 * 1024;

    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Normalises the operator's URL so that relative paths append to it rather than replace its last segment.</summary>
    public static Uri BaseAddressFor(Uri operatorUrl)
    {
        ArgumentNullException.ThrowIfNull(operatorUrl);
        var text = operatorUrl.AbsoluteUri;
        return new Uri(text.EndsWith('/') ? text : text + "/", UriKind.Absolute);
    }

    /// <summary>Fetches the operator's published keys.</summary>
    /// <exception cref="HttpRequestException">The operator did not answer with a key set.</exception>
    /// <exception cref="FormatException">The answer is not a JWK Set.</exception>
    /// <exception cref="TaskCanceledException">Timed out.</exception>
    public async Task<JsonWebKeySet> FetchKeysAsync(CancellationToken cancellationToken)
    {
        using var http = httpClients.CreateClient(HttpClientName);
        var json = await http.GetStringAsync(new Uri(".well-known/jwks.json", UriKind.Relative), cancellationToken).ConfigureAwait(false);
        return JsonWebKeySet.Parse(json);
    }

    /// <summary>Sends a signed refund request (<c>POST /v1/refunds</c>).</summary>
    /// <returns>The operator's answer, or its refusal's problem code and detail.</returns>
    /// <exception cref="HttpRequestException">The operator could not be reached, or answered what is neither.</exception>
    /// <exception cref="TaskCanceledException">Timed out.</exception>
    public async Task<(RefundAnswer? Answer, string? Code, string? Detail)> RefundAsync(string request, CancellationToken cancellationToken)
    {
        using var http = httpClients.CreateClient(HttpClientName);
        using var content = new ByteArrayContent(ProtocolJson.ToUtf8(new RefundSubmission(request)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        using var response = await http.PostAsync(new Uri("v1/refunds", UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
        return await RefundAnswerOfAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads a refund's current notice (<c>GET /v1/refunds/{id}</c>), proving it is the store's with
    /// <paramref name="storeQuery"/>, its signed query for the refund's settlement.
    /// </summary>
    /// <returns>The operator's answer, or its refusal's problem code and detail.</returns>
    /// <exception cref="HttpRequestException">The operator could not be reached, or answered what is neither.</exception>
    /// <exception cref="TaskCanceledException">Timed out.</exception>
    public async Task<(RefundAnswer? Answer, string? Code, string? Detail)> GetRefundAsync(Guid refundId, string storeQuery, CancellationToken cancellationToken)
    {
        using var http = httpClients.CreateClient(HttpClientName);
        var path = string.Create(CultureInfo.InvariantCulture, $"v1/refunds/{refundId:D}");
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Add(SettlementReadProof.StoreHeader, storeQuery);
        using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return await RefundAnswerOfAsync(response, cancellationToken).ConfigureAwait(false);
    }

    // The answer to a refund's POST or GET: its notice, or a refusal with a problem code.
    private static async Task<(RefundAnswer? Answer, string? Code, string? Detail)> RefundAnswerOfAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            var answer = await response.Content.ReadFromJsonAsync<RefundAnswer>(ProtocolJson.Options, cancellationToken).ConfigureAwait(false);
            return (answer ?? throw new HttpRequestException("The operator answered a refund with no body."), null, null);
        }

        // A refusal is problem details with a code; anything else (a proxy's 502, a busy node, a rate
        // limit or a time-out, which decide nothing about the refund) is not an answer.
        if ((int)response.StatusCode is >= 400 and < 500 and not 408 and not 429 && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            var problem = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(cancellationToken).ConfigureAwait(false);
            if (problem.ValueKind == System.Text.Json.JsonValueKind.Object && problem.TryGetProperty("code", out var code) && code.ValueKind == System.Text.Json.JsonValueKind.String)
            {
                var detail = problem.TryGetProperty("detail", out var text) && text.ValueKind == System.Text.Json.JsonValueKind.String ? text.GetString() : null;
                return (null, code.GetString(), detail);
            }
        }

        throw new HttpRequestException($"The operator answered {(int)response.StatusCode} to a refund.", null, response.StatusCode);
    }

    /// <summary>Delivers a receipt (SIG4) for a settlement to the operator.</summary>
    /// <exception cref="HttpRequestException">The operator refused it or could not be reached.</exception>
    /// <exception cref="TaskCanceledException">Timed out.</exception>
    public async Task DeliverReceiptAsync(Guid settlementId, string receipt, CancellationToken cancellationToken)
    {
        using var http = httpClients.CreateClient(HttpClientName);
        using var content = new ByteArrayContent(ProtocolJson.ToUtf8(new ReceiptDelivery(receipt)));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        var path = string.Create(CultureInfo.InvariantCulture, $"v1/settlements/{settlementId:D}/receipt");
        using var response = await http.PostAsync(new Uri(path, UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
    }
}
