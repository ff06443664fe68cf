using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenPurse.Protocol.Jose;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Operator.Credit;

/// <summary>How a call to the credit authorizer ended.</summary>
internal enum CreditResult
{
    /// <summary>The authorizer answered with the authorization (approved or declined, captured or voided).</summary>
    Answered,

    /// <summary>The authorizer refused the request with problem details (<see cref="CreditOutcome.Code"/>); sending it again changes nothing.</summary>
    Refused,

    /// <summary>
    /// The authorizer could not be reached, answered 503 or 5xx, or answered something that is not
    /// its contract: whether it acted is unknown; send the same request (the same idempotency key) again.
    /// </summary>
    Unavailable,

    /// <summary>No answer within the client's time-out: whether it acted is unknown; send the same request again, or void.</summary>
    TimedOut,
}

/// <summary>What a call to the credit authorizer came to.</summary>
/// <param name="Result">How it ended.</param>
/// <param name="Authorization">The authorization, when <see cref="CreditResult.Answered"/>.</param>
/// <param name="Code">The problem code of a refusal (or of a 503), when the authorizer gave one.</param>
/// <param name="Detail">What the authorizer or the client said went wrong; never card data.</param>
internal sealed record CreditOutcome(CreditResult Result, CreditAuthorization? Authorization = null, string? Code = null, string? Detail = null)
{
    /// <summary>The refusal's code in the one vocabulary, or null (none, or one this version does not know).</summary>
    public ProblemCode? Problem => ProblemCode.Find(Code);

    /// <summary>The authorizer answered and the authorization is approved.</summary>
    public bool IsApproved => Result == CreditResult.Answered && Authorization?.Status == AuthorizationStatus.Approved;
}

/// <summary>
/// The credit authorizer as the operator sees it (docs/authorizer.md): authorize a top-up's charge on
/// the card data the wallet encrypted to the authorizer (the operator never opens it), capture it
/// once the e-purse card proved that it took the value, or void it when the card did not. Every
/// call may be repeated: an authorization with its idempotency key, a capture or a void as is.
/// </summary>
internal interface ICreditAuthorizer
{
    /// <summary>The authorizer's public encryption key set, which the wallet encrypts card data to.</summary>
    /// <exception cref="HttpRequestException">The authorizer did not answer with a key set.</exception>
    Task<JsonWebKeySet> GetKeysAsync(CancellationToken cancellationToken);

    /// <summary>Asks for an authorization; <paramref name="idempotencyKey"/> makes a repeated request answer the first one's authorization.</summary>
    Task<CreditOutcome> AuthorizeAsync(AuthorizeRequest request, string idempotencyKey, CancellationToken cancellationToken);

    /// <summary>Captures an approved authorization, at most its amount.</summary>
    Task<CreditOutcome> CaptureAsync(Guid authorizationId, CaptureRequest request, CancellationToken cancellationToken);

    /// <summary>Voids an approved authorization that was not captured.</summary>
    Task<CreditOutcome> VoidAsync(Guid authorizationId, VoidRequest request, CancellationToken cancellationToken);

    /// <summary>Reads an authorization (after a time-out, to learn what happened).</summary>
    Task<CreditOutcome> GetAsync(Guid authorizationId, CancellationToken cancellationToken);

    /// <summary>
    /// The authorization made under <paramref name="idempotencyKey"/>, for a request whose answer was
    /// lost and that cannot be sent again (the operator keeps no card data): refused with
    /// <see cref="ProblemCode.AuthorizationNotFound"/> when none was made.
    /// </summary>
    Task<CreditOutcome> FindAsync(string idempotencyKey, CancellationToken cancellationToken);
}

/// <summary>
/// <see cref="ICreditAuthorizer"/> over the authorizer's HTTP API: the API key as a bearer token,
/// a time-out of its own on every call (distinct from the caller's cancellation), and every answer
/// turned into a <see cref="CreditOutcome"/>: no exception for what the authorizer or the network does.
/// </summary>
internal sealed class HttpCreditAuthorizer : ICreditAuthorizer
{
    /// <summary>An authorization or a key set is a few kilobytes; the bound keeps a broken authorizer from filling memory.</summary>
    public const int ResponseLengthMax = 64 * 1024;

    private readonly HttpClient _http;
    private readonly string _apiKey;
    private readonly TimeSpan _timeout;

    /// <param name="http">A client whose <see cref="HttpClient.BaseAddress"/> is the authorizer's URL; its own time-out should not be shorter than <paramref name="timeout"/>.</param>
    /// <param name="apiKey">One of the authorizer's API keys.</param>
    /// <param name="timeout">How long one call may take before it counts as <see cref="CreditResult.TimedOut"/>.</param>
    public HttpCreditAuthorizer(HttpClient http, string apiKey, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrEmpty(apiKey);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        if (http.BaseAddress is not { IsAbsoluteUri: true })
        {
            throw new ArgumentException("The client needs the authorizer's URL as its base address.", nameof(http));
        }

        _http = http;
        _apiKey = apiKey;
        _timeout = timeout;
    }

    public async Task<JsonWebKeySet> GetKeysAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        using var response = await _http.GetAsync(Relative("v1/keys"), HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        return JsonWebKeySet.Parse(await ReadBoundedAsync(response, timeout.Token).ConfigureAwait(false));
    }

    public Task<CreditOutcome> AuthorizeAsync(AuthorizeRequest request, string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrEmpty(idempotencyKey);
        return SendAsync(HttpMethod.Post, "v1/authorizations", request, idempotencyKey, cancellationToken);
    }

    public Task<CreditOutcome> CaptureAsync(Guid authorizationId, CaptureRequest request, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, PathOf(authorizationId, "/capture"), request ?? throw new ArgumentNullException(nameof(request)), null, cancellationToken);

    public Task<CreditOutcome> VoidAsync(Guid authorizationId, VoidRequest request, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, PathOf(authorizationId, "/void"), request ?? throw new ArgumentNullException(nameof(request)), null, cancellationToken);

    public Task<CreditOutcome> GetAsync(Guid authorizationId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, PathOf(authorizationId, ""), null, null, cancellationToken);

    public Task<CreditOutcome> FindAsync(string idempotencyKey, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(idempotencyKey);
        return SendAsync(HttpMethod.Get, "v1/authorizations?idempotencyKey=" + Uri.EscapeDataString(idempotencyKey), null, null, cancellationToken);
    }

    private static string PathOf(Guid id, string suffix) => string.Create(CultureInfo.InvariantCulture, $"v1/authorizations/{id:D}{suffix}");

    private static Uri Relative(string path) => new(path, UriKind.Relative);

    private async Task<CreditOutcome> SendAsync(HttpMethod method, string path, object? body, string? idempotencyKey, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        using var message = new HttpRequestMessage(method, Relative(path));
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        if (idempotencyKey is not null)
        {
            message.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        if (body is not null)
        {
            message.Content = new ByteArrayContent(ProtocolJson.ToUtf8(body));
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        }

        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            var text = await ReadBoundedAsync(response, timeout.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return JsonSerializer.Deserialize<CreditAuthorization>(text, ProtocolJson.Options) is { } authorization
                    ? new CreditOutcome(CreditResult.Answered, authorization)
                    : new CreditOutcome(CreditResult.Unavailable, Detail: "The authorizer answered null.");
            }

            var (code, detail) = ReadProblem(text);
            var status = (int)response.StatusCode;
            return status is >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests || code is null
                ? new CreditOutcome(CreditResult.Unavailable, Code: code, Detail: detail ?? $"The authorizer answered {status}.")
                : new CreditOutcome(CreditResult.Refused, Code: code, Detail: detail);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CreditOutcome(CreditResult.TimedOut, Detail: $"The authorizer did not answer within {_timeout.TotalSeconds:0.###} s.");
        }
        catch (HttpRequestException e)
        {
            return new CreditOutcome(CreditResult.Unavailable, Detail: "The authorizer could not be reached: " + e.Message);
        }
        catch (JsonException)
        {
            return new CreditOutcome(CreditResult.Unavailable, Detail: "The authorizer's answer is not an authorization.");
        }
    }

    /// <summary>The body as text, refused beyond <see cref="ResponseLengthMax"/>.</summary>
    private static async Task<string> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > ResponseLengthMax)
        {
            throw new HttpRequestException($"The authorizer's answer is longer than {ResponseLengthMax} bytes.");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[ResponseLengthMax + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false)) > 0)
        {
            length += read;
        }

        return length > ResponseLengthMax
            ? throw new HttpRequestException($"The authorizer's answer is longer than {ResponseLengthMax} bytes.")
            : System.Text.Encoding.UTF8.GetString(buffer, 0, length);
    }

    /// <summary>The <c>code</c> and <c>detail</c> of problem details, or nulls when the body is not such.</summary>
    private static (string? Code, string? Detail) ReadProblem(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            var code = root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            var detail = root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            return (code, detail);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }
}
