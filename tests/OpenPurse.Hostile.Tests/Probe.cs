using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace OpenPurse.Hostile.Tests;

/// <summary>One hostile request: what it tries, and the bytes that carry it.</summary>
/// <param name="Name">What the probe tries, for the failure message.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Path">The path and query as sent (already percent-encoded where a URL needs it).</param>
/// <param name="Body">The body's bytes; null sends none.</param>
/// <param name="ContentType">The body's Content-Type, sent as given (unvalidated); null sends none.</param>
/// <param name="Headers">More headers, sent as given (unvalidated).</param>
/// <param name="KestrelAlone">
/// The status Kestrel answers alone, with an empty body, for what it cannot parse or what is beyond
/// its own limits (docs/errors.md lists these); null when the application answers.
/// </param>
internal sealed record Probe(string Name, HttpMethod Method, string Path, byte[]? Body = null, string? ContentType = "application/json", IReadOnlyList<(string Name, string Value)>? Headers = null, int? KestrelAlone = null)
{
    /// <summary>Kestrel's own limit on a request's headers, beyond which it answers 431 alone (docs/errors.md).</summary>
    public const int KestrelHeadersLengthMax = 128 * 1024;

    /// <summary>What is wrong with <paramref name="answer"/> to this probe, or null (see <see cref="ProbeAnswer.Fault"/>).</summary>
    public string? Fault(ProbeAnswer answer, DocumentedCodes documented)
    {
        ArgumentNullException.ThrowIfNull(answer);
        return KestrelAlone is not { } status ? answer.Fault(documented)
            : answer.Status == status && answer.Body.Length == 0 ? null
            : $"answered {answer.Status} ({answer.Body.Length} bytes of body), where docs/errors.md says Kestrel answers {status} alone";
    }

    private const int ExpectContinueFrom = 64 * 1024;

    public static Probe Json(string name, HttpMethod method, string path, string json, IReadOnlyList<(string Name, string Value)>? headers = null) =>
        new(name, method, path, Encoding.UTF8.GetBytes(json), "application/json", headers);

    public override string ToString() => $"{Name}: {Method} {(Path.Length > 120 ? Path[..120] + "…" : Path)}";

    /// <summary>Sends the probe and reads the whole answer.</summary>
    public async Task<ProbeAnswer> SendAsync(HttpClient client)
    {
        using var request = new HttpRequestMessage(Method, new Uri(client.BaseAddress!, Path));
        if (Body is not null)
        {
            request.Content = new ByteArrayContent(Body);
            request.Content.Headers.ContentType = null;
            if (ContentType is not null)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }
        }

        foreach (var (name, value) in Headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        // A large body waits for the server's go-ahead, as a careful client's would: a server that
        // refuses it from its length answers before the body is sent, instead of into a broken pipe.
        request.Headers.ExpectContinue = Body?.Length > ExpectContinueFrom;
        try
        {
            using var response = await client.SendAsync(request);
            return new ProbeAnswer((int)response.StatusCode, response.Content.Headers.ContentType, await response.Content.ReadAsStringAsync(), Method == HttpMethod.Head);
        }
        catch (HttpRequestException e)
        {
            return new ProbeAnswer(0, null, $"no answer: {e.Message} {e.InnerException?.Message}", Method == HttpMethod.Head);
        }
    }
}

/// <summary>A server's answer to a probe.</summary>
/// <param name="Status">The HTTP status; 0 when the server answered nothing.</param>
/// <param name="ContentType">The answer's Content-Type.</param>
/// <param name="Body">The answer's body.</param>
/// <param name="Head">The answer to a HEAD request, which has no body to read a code from.</param>
internal sealed record ProbeAnswer(int Status, MediaTypeHeaderValue? ContentType, string Body, bool Head = false)
{
    /// <summary>
    /// What is wrong with this answer, or null: a fault (5xx) is wrong; a refusal (4xx) must be
    /// problem details whose <c>code</c> the party's table in docs/errors.md documents, with that
    /// status, and whose <c>type</c> names the code.
    /// </summary>
    public string? Fault(DocumentedCodes documented)
    {
        if (Status is 0 or >= 500)
        {
            return $"answered {Status}: {Shorten(Body)}";
        }

        if (Status < 400)
        {
            return null;
        }

        if (ContentType?.MediaType != "application/problem+json")
        {
            return $"answered {Status} as {ContentType?.ToString() ?? "no Content-Type"}, not application/problem+json: {Shorten(Body)}";
        }

        if (Head)
        {
            return null;
        }

        string? code;
        string? type;
        try
        {
            var problem = JsonDocument.Parse(Body).RootElement;
            code = problem.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            type = problem.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (JsonException)
        {
            return $"answered {Status} with problem details that are not JSON: {Shorten(Body)}";
        }

        if (code is null)
        {
            return $"answered {Status} without a code: {Shorten(Body)}";
        }

        if (documented.StatusOf(code) is not { } status)
        {
            return $"answered {Status} with code '{code}', which docs/errors.md does not document";
        }

        if (status != Status)
        {
            return $"answered {Status} with code '{code}', which docs/errors.md documents as {status}";
        }

        return type == "https://openpurse.org/problems/" + code ? null : $"answered code '{code}' with type '{type}'";
    }

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
