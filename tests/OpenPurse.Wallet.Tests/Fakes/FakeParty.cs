using System.Net;
using System.Text;
using System.Text.Json;
using OpenPurse.Protocol.Messages;

namespace OpenPurse.Wallet.Tests.Fakes;

/// <summary>A party's HTTP API in process: no sockets, every request recorded.</summary>
internal abstract class FakeParty : HttpMessageHandler
{
    private readonly Lock _lock = new();
    private readonly List<string> _requests = [];

    /// <summary>"GET v1/catalog", "POST v1/orders", … in arrival order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    public int Count(string methodAndPathPrefix) => Requests.Count(r => r.StartsWith(methodAndPathPrefix, StringComparison.Ordinal));

    protected abstract Task<HttpResponseMessage> HandleAsync(HttpMethod method, string[] path, HttpRequestMessage request);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri!.AbsolutePath.Trim('/');
        lock (_lock)
        {
            _requests.Add($"{request.Method} {path}");
        }

        return await HandleAsync(request.Method, path.Split('/'), request);
    }

    protected static async Task<T> ReadAsync<T>(HttpRequestMessage request, JsonSerializerOptions? options = null) =>
        JsonSerializer.Deserialize<T>(await request.Content!.ReadAsByteArrayAsync(), options ?? ProtocolJson.Options)!;

    protected static HttpResponseMessage Json(object body, HttpStatusCode status = HttpStatusCode.OK, JsonSerializerOptions? options = null) =>
        new(status)
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, body.GetType(), options ?? ProtocolJson.Options))
            {
                Headers = { ContentType = new("application/json") },
            },
        };

    protected static HttpResponseMessage Text(string text, string mediaType = "text/plain") =>
        new(HttpStatusCode.OK) { Content = new StringContent(text, Encoding.UTF8, mediaType) };

    /// <summary>RFC 9457 problem details with the OpenPurse <c>code</c> extension.</summary>
    protected static HttpResponseMessage Problem(HttpStatusCode status, string code, string detail) =>
        new(status)
        {
            Content = new StringContent(
                JsonSerializer.Serialize(new { type = "https://openpurse.test/problems/" + code, title = code, status = (int)status, detail, code }),
                Encoding.UTF8,
                "application/problem+json"),
        };

    protected static HttpResponseMessage NotFound() => Problem(HttpStatusCode.NotFound, "not_found", "No such resource.");
}

/// <summary>Sends each request to the fake whose host it names, as the CLI shares one handler among its clients.</summary>
internal sealed class RouterHandler(IReadOnlyDictionary<string, HttpMessageHandler> byHost) : HttpMessageHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var invoker = new HttpMessageInvoker(byHost[request.RequestUri!.Host], disposeHandler: false);
        return await invoker.SendAsync(request, cancellationToken);
    }
}
