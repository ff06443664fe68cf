using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace OpenPurse.Testing;

/// <summary>
/// HTTP/1.1 written by hand over a TcpClient: for the requests HttpClient will not send (a path
/// holding a control character, a request line or headers beyond any sane size), so that a test
/// sees what a server answers to them.
/// </summary>
public static class RawHttp
{
    /// <summary>What the server answered: status, media type and body (de-chunked).</summary>
    public sealed record Answer(int Status, string? ContentType, string Body, IReadOnlyDictionary<string, string> Headers);

    /// <summary>Sends one request (<paramref name="method"/>, <paramref name="target"/> as given, the headers, an optional body) and reads the answer to the end.</summary>
    /// <param name="server">The server's address.</param>
    /// <param name="method">The request's method.</param>
    /// <param name="target">The request target, sent as it is.</param>
    /// <param name="headers">Header fields besides Host, Connection and Content-Length.</param>
    /// <param name="body">The body sent.</param>
    /// <param name="declaredLength">The Content-Length announced, when it is not the body's: a huge body announced, not sent.</param>
    public static async Task<Answer> SendAsync(Uri server, string method, string target, IEnumerable<(string Name, string Value)>? headers = null, string? body = null, long? declaredLength = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"{method} {target} HTTP/1.1\r\nHost: {server.Authority}\r\nConnection: close\r\n");
        foreach (var (name, value) in headers ?? [])
        {
            head.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        }

        var bodyBytes = body is null ? [] : Encoding.UTF8.GetBytes(body);
        if (body is not null || declaredLength is not null)
        {
            head.Append(CultureInfo.InvariantCulture, $"Content-Length: {declaredLength ?? bodyBytes.Length}\r\n");
        }

        head.Append("\r\n");
        using var tcp = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await tcp.ConnectAsync(server.Host, server.Port, timeout.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(head.ToString()), timeout.Token);
        await stream.WriteAsync(bodyBytes, timeout.Token);
        await stream.FlushAsync(timeout.Token);
        using var received = new MemoryStream();
        try
        {
            await stream.CopyToAsync(received, timeout.Token);
        }
        catch (IOException)
        {
            // A server that refuses may reset the connection after its answer; what came is the answer.
        }

        return Parse(Encoding.UTF8.GetString(received.ToArray()));
    }

    private static Answer Parse(string response)
    {
        var end = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0)
        {
            throw new InvalidOperationException($"Not an HTTP answer: '{response}'");
        }

        var lines = response[..end].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        var body = response[(end + 4)..];
        if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            body = Dechunk(body);
        }

        var contentType = headers.TryGetValue("Content-Type", out var type) ? type.Split(';')[0].Trim() : null;
        return new Answer(status, contentType, body, headers);
    }

    private static string Dechunk(string chunked)
    {
        var body = new StringBuilder();
        var position = 0;
        while (position < chunked.Length)
        {
            var lineEnd = chunked.IndexOf("\r\n", position, StringComparison.Ordinal);
            var size = int.Parse(chunked[position..lineEnd].Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                break;
            }

            body.Append(chunked, lineEnd + 2, size);
            position = lineEnd + 2 + size + 2;
        }

        return body.ToString();
    }
}
