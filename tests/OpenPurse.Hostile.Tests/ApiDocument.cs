using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Hostile.Tests;

/// <summary>One answer a server gave: to which request, on which listener, with which status and problem code.</summary>
/// <param name="Party">The server.</param>
/// <param name="Admin">Whether it came from the operator's admin listener.</param>
/// <param name="Method">The request's method.</param>
/// <param name="Path">The request's path as sent (percent-encoded), without the query.</param>
/// <param name="Status">The answer's status.</param>
/// <param name="Code">The problem's <c>code</c>, or null when the answer is not problem details.</param>
internal sealed record Observation(Party Party, bool Admin, string Method, string Path, int Status, string? Code)
{
    /// <summary>
    /// Whether an endpoint answered: not routing refusing a path or method no endpoint has (or the
    /// other listener's), nor Kestrel answering alone with an empty body, nor no answer at all.
    /// </summary>
    public bool ByAnEndpoint => Status > 0
        && Code is not ("request.not_found" or "request.method_not_allowed")
        && !(Status >= 400 && Code is null);

    public override string ToString() => $"{Method} {Path} answered {Status}{(Code is null ? "" : $" ({Code})")}{(Admin ? " on the admin listener" : "")}";
}

/// <summary>Records every answer its client receives, for the check that the OpenAPI documents describe them.</summary>
internal sealed class AnswerRecorder(Party party, bool admin, ConcurrentQueue<Observation> observed, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        string? code = null;
        if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            await response.Content.LoadIntoBufferAsync(cancellationToken);
            try
            {
                using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
                code = problem.RootElement.ValueKind == JsonValueKind.Object && problem.RootElement.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            }
            catch (JsonException)
            {
                // Not JSON: the probe's own check says so.
            }
        }

        var uri = response.RequestMessage?.RequestUri ?? request.RequestUri!;
        observed.Enqueue(new Observation(party, admin, request.Method.Method, uri.AbsolutePath, (int)response.StatusCode, code));
        return response;
    }
}

/// <summary>An OpenAPI document as a test reads it: each operation (method and path template) with its documented response statuses.</summary>
internal sealed partial class ApiDocument
{
    private readonly List<(string Method, string Template, Regex Path, IReadOnlySet<string> Statuses)> _operations = [];

    private ApiDocument(JsonElement document)
    {
        foreach (var path in document.GetProperty("paths").EnumerateObject())
        {
            var pattern = "^" + string.Join("/", Normalize(path.Name).Split('/').Select(segment => Parameter().IsMatch(segment) ? "[^/]+" : Regex.Escape(segment))) + "$";
            foreach (var operation in path.Value.EnumerateObject())
            {
                var statuses = operation.Value.TryGetProperty("responses", out var responses)
                    ? responses.EnumerateObject().Select(r => r.Name).ToHashSet(StringComparer.Ordinal)
                    : [];
                _operations.Add((operation.Name.ToUpperInvariant(), Normalize(path.Name), new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.IgnoreCase), statuses));
            }
        }
    }

    /// <summary>Reads the document at <paramref name="path"/> of the server <paramref name="client"/> talks to, without credentials.</summary>
    public static async Task<ApiDocument> ReadAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        Assert.True(response.IsSuccessStatusCode, $"{path} answered {(int)response.StatusCode} on {client.BaseAddress}");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return new ApiDocument(document.RootElement.Clone());
    }

    /// <summary>Whether the document has the route table's endpoint "METHOD pattern" (route constraints aside).</summary>
    public bool Describes(string endpoint)
    {
        var (method, pattern) = (endpoint[..endpoint.IndexOf(' ', StringComparison.Ordinal)], endpoint[(endpoint.IndexOf(' ', StringComparison.Ordinal) + 1)..]);
        var template = Normalize(Constraint().Replace(pattern, "{$1}"));
        return _operations.Any(o => o.Method == method && o.Template == template);
    }

    /// <summary>What is wrong with the document's account of <paramref name="answer"/>, or null (paths match as routing matches them: ignoring case).</summary>
    public string? Fault(Observation answer)
    {
        var operation = _operations.FirstOrDefault(o => o.Method == answer.Method && o.Path.IsMatch(Normalize(answer.Path)));
        // The request limits refuse a path, target or body before routing picks an endpoint, on any
        // path and listener: such an answer is the framework's, not an operation's.
        var beforeRouting = ProblemCode.Framework.Any(code => code.Code == answer.Code);
        return operation.Template is null ? beforeRouting ? null : $"{answer}: no operation of the document has this method and path"
            : operation.Statuses.Contains(answer.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)) ? null
            : $"{answer}: the operation {answer.Method} {operation.Template} documents only {string.Join(", ", operation.Statuses.Order(StringComparer.Ordinal))}";
    }

    // "/v1/settlements/" is the route table's spelling of "/v1/settlements".
    private static string Normalize(string path) => path.Length > 1 ? path.TrimEnd('/') : path;

    [GeneratedRegex(@"^\{[^}]+\}$")]
    private static partial Regex Parameter();

    [GeneratedRegex(@"\{([^}:?]+)[^}]*\}")]
    private static partial Regex Constraint();
}
