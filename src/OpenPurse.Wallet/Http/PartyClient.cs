using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OpenPurse.Wallet.Purchase;

namespace OpenPurse.Wallet.Http;

/// <summary>
/// JSON over HTTP to one party (the store or the operator), with every way it can go wrong turned
/// into a <see cref="WalletException"/>: unreachable, refused (RFC 9457 problem details with a
/// <c>code</c> extension), or an answer the wallet cannot read. Bodies are read up to a limit.
/// </summary>
internal sealed class PartyClient
{
    /// <summary>The largest JSON body the wallet reads: every message is a few kilobytes.</summary>
    public const int JsonBodyBytesMax = 256 * 1024;

    /// <summary>The largest download the wallet reads into memory.</summary>
    public const int ContentBytesMax = 1024 * 1024;

    private const int ReadChunkBytes = 16 * 1024;
    private const int CodeLengthMax = 64;
    private const int TextLengthMax = 300;

    /// <summary>The longest Retry-After the wallet honours.</summary>
    private static readonly TimeSpan s_retryAfterMax = TimeSpan.FromSeconds(10);

    private static readonly MediaTypeHeaderValue s_json = new("application/json");

    private readonly HttpClient _http;
    private readonly Uri _base;
    private readonly string _party;
    private readonly JsonSerializerOptions _json;

    /// <param name="http">A client whose <see cref="HttpClient.BaseAddress"/> is the party's root URL.</param>
    /// <param name="party">"store" or "operator": the first part of every error code.</param>
    /// <param name="json">How to read and write bodies.</param>
    public PartyClient(HttpClient http, string party, JsonSerializerOptions json)
    {
        ArgumentNullException.ThrowIfNull(http);
        var baseAddress = http.BaseAddress ?? throw new ArgumentException($"The {party}'s HttpClient needs a BaseAddress.", nameof(http));
        if (!baseAddress.IsAbsoluteUri || baseAddress.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"The {party}'s address must be an absolute http(s) URL.", nameof(http));
        }

        // A base without a trailing slash would drop its last path segment when resolving "v1/…".
        _base = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
        _http = http;
        _party = party;
        _json = json;
    }

    /// <summary>How many requests went to this party.</summary>
    public int Requests { get; private set; }

    /// <summary>The party's base URL, for messages.</summary>
    public Uri BaseAddress => _base;

    public Task<T> GetAsync<T>(string path, CancellationToken cancellationToken) =>
        SendAsync<T>(new HttpRequestMessage(HttpMethod.Get, Resolve(path)), cancellationToken);

    public Task<T> PostAsync<T>(string path, object body, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Resolve(path))
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, body.GetType(), _json)),
        };
        request.Content.Headers.ContentType = s_json;
        return SendAsync<T>(request, cancellationToken);
    }

    /// <summary>GET of a text body (a JWKS, a download), with extra request headers.</summary>
    public async Task<string> GetTextAsync(string path, IReadOnlyDictionary<string, string> headers, int bytesMax, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Resolve(path));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        var bytes = await ExchangeAsync(request, bytesMax, cancellationToken).ConfigureAwait(false);
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw Malformed("sent text that is not UTF-8", e);
        }
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            var bytes = await ExchangeAsync(request, JsonBodyBytesMax, cancellationToken).ConfigureAwait(false);
            try
            {
                return JsonSerializer.Deserialize<T>(bytes, _json) ?? throw new JsonException("The body is null.");
            }
            catch (JsonException e)
            {
                throw Malformed($"answered {request.RequestUri?.AbsolutePath} with a body the wallet cannot read ({e.Message})", e);
            }
        }
    }

    // One request and its answer's body; anything but 2xx becomes "refused".
    private async Task<byte[]> ExchangeAsync(HttpRequestMessage request, int bytesMax, CancellationToken cancellationToken)
    {
        Requests++;
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            // The party answered but the TLS handshake failed, mostly because its certificate is not
            // believed (another CA, another name, expired): say so, and how a deployment's own CA is trusted.
            throw Unreachable(
                $"the TLS connection failed ({Innermost(e).Message.TrimEnd('.')}); a deployment with its own CA needs that CA's certificate, given with --trust or {WalletTrust.TrustVariable}",
                e);
        }
        catch (HttpRequestException e)
        {
            throw Unreachable(e.Message, e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw Unreachable("no answer in time", e);
        }

        using (response)
        {
            byte[] body;
            try
            {
                body = await ReadBoundedAsync(response.Content, bytesMax, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw Unreachable("the answer broke off: " + e.Message, e);
            }

            if (!response.IsSuccessStatusCode)
            {
                throw Refused(response.StatusCode, body, response.Headers.RetryAfter);
            }

            Debug.Assert(body.Length <= bytesMax, "Bodies are read up to the limit.");

            return body;
        }
    }

    private async Task<byte[]> ReadBoundedAsync(HttpContent content, int bytesMax, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > bytesMax)
        {
            throw Malformed($"sent {content.Headers.ContentLength} bytes, more than the {bytesMax} the wallet reads");
        }

        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[ReadChunkBytes];
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > bytesMax)
                {
                    throw Malformed($"sent more than the {bytesMax} bytes the wallet reads");
                }

                buffer.Write(chunk, 0, read);
            }

            Debug.Assert(buffer.Length <= bytesMax, "The loop stops at the limit.");
            return buffer.ToArray();
        }
    }

    private Uri Resolve(string path)
    {
        Debug.Assert(!path.StartsWith('/'), "Paths are relative to the party's base URL.");
        return new Uri(_base, path);
    }

    private WalletException Unreachable(string why, Exception cause) =>
        new(_party + ".unreachable", $"The {_party} at {_base} cannot be reached: {why}.", innerException: cause);

    private WalletException Malformed(string why, Exception? cause = null) =>
        new(_party + ".malformed", $"The {_party} {why}.", innerException: cause);

    // RFC 9457: the operator and the store put a stable "code" beside the title and detail.
    private WalletException Refused(HttpStatusCode status, byte[] body, RetryConditionHeaderValue? retryAfter)
    {
        string? code = null, title = null, detail = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                code = ReadString(document.RootElement, "code");
                title = ReadString(document.RootElement, "title");
                detail = ReadString(document.RootElement, "detail");
            }
        }
        catch (JsonException)
        {
            // Not a problem document; the status code speaks alone.
        }

        code = Printable(code, CodeLengthMax) ?? "http_" + ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var why = Printable(detail ?? title, TextLengthMax) ?? $"HTTP {(int)status} {status}";

        // 5xx: the party failed rather than refused; a request whose effect is idempotent may be sent again.
        return (int)status >= 500
            ? new WalletException(WalletErrors.With(_party + ".unavailable", code), $"The {_party} failed: {why} ({code}).") { RetryAfter = RetryDelay(retryAfter) }
            : new WalletException(WalletErrors.With(_party + ".refused", code), $"The {_party} refused: {why} ({code}).");
    }

    // Retry-After in seconds, bounded: another party's header must not park the wallet for hours.
    // A date form is not honoured (a party's clock is not the wallet's).
    private static TimeSpan? RetryDelay(RetryConditionHeaderValue? retryAfter) =>
        retryAfter?.Delta is { } delta && delta >= TimeSpan.Zero ? TimeSpan.FromTicks(Math.Min(delta.Ticks, s_retryAfterMax.Ticks)) : null;

    // Another party's words reach the person's terminal: no control characters, bounded length.
    private static string? Printable(string? text, int lengthMax)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var clean = new string([.. text.Where(c => !char.IsControl(c))]);
        return clean.Length <= lengthMax ? clean : clean[..lengthMax] + "…";
    }

    private static Exception Innermost(Exception exception)
    {
        // Bounded: a chain of causes is a few exceptions deep.
        for (var depth = 0; depth < 8 && exception.InnerException is { } inner; depth++)
        {
            exception = inner;
        }

        return exception;
    }

    private static string? ReadString(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
