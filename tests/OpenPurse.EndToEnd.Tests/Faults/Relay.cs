using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace OpenPurse.EndToEnd.Tests.Faults;

/// <summary>What a relay does to the one message a fault names.</summary>
internal enum FaultAction
{
    /// <summary>The request never reaches the receiver; the sender's connection is cut.</summary>
    DropRequest,

    /// <summary>The receiver handles the request; its answer is lost on the way back.</summary>
    DropAnswer,

    /// <summary>A process is killed before the request reaches the receiver; the connection is cut.</summary>
    KillBefore,

    /// <summary>The receiver handles the request, then a process is killed before the answer gets back.</summary>
    KillAfter,

    /// <summary>The answer gets back, then a process is killed at once (the sender, in the middle of what the answer starts).</summary>
    KillAfterDelivery,
}

/// <summary>One relayed exchange, as it crossed the relay.</summary>
internal sealed record RelayedExchange(string Method, string Path, string? ContentType, byte[] RequestBody, int Status, byte[] ResponseBody);

/// <summary>One fault, fired by the first request that matches: method and a path pattern.</summary>
/// <param name="Method">HTTP method.</param>
/// <param name="Path">A regular expression over the path.</param>
/// <param name="Action">What happens to it.</param>
/// <param name="Kill">For the kill actions: which process dies (the sender's or the receiver's).</param>
internal sealed record Fault(string Method, string Path, FaultAction Action, Action? Kill = null);

/// <summary>
/// An HTTP relay on 127.0.0.1 between two parties, the network between them: it forwards every
/// request to its target and answers with the target's answer, except for one armed fault, which
/// drops a request or an answer, or kills a process at that moment. The target can move (a
/// restarted process listens elsewhere) while the relay's address stays.
/// </summary>
internal sealed class Relay : IAsyncDisposable
{
    private static readonly HashSet<string> s_hopHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Host", "Content-Length", "Upgrade",
    };

    private readonly WebApplication _app;
    private readonly HttpClient _forward = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly Lock _lock = new();
    private readonly List<RelayedExchange> _exchanges = [];
    private Fault? _armed;
    private TaskCompletionSource _fired = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Relay(WebApplication app, Uri target)
    {
        _app = app;
        Target = target;
    }

    public Uri Url { get; private set; } = null!;

    /// <summary>Where requests go; set anew when the receiver restarts on another port.</summary>
    public Uri Target { get; set; }

    /// <summary>Completes when the armed fault has fired.</summary>
    public Task Fired
    {
        get
        {
            lock (_lock)
            {
                return _fired.Task;
            }
        }
    }

    public static async Task<Relay> StartAsync(Uri target)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var relay = new Relay(app, target);
        app.Run(relay.HandleAsync);
        await app.StartAsync();
        relay.Url = new Uri(app.Urls.First());
        return relay;
    }

    /// <summary>Every exchange relayed whole so far, oldest first: what a party in the middle could record.</summary>
    public IReadOnlyList<RelayedExchange> Exchanges
    {
        get
        {
            lock (_lock)
            {
                return [.. _exchanges];
            }
        }
    }

    /// <summary>Arms one fault; the previous one, fired or not, is forgotten.</summary>
    public void Arm(Fault? fault)
    {
        lock (_lock)
        {
            _armed = fault;
            _fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _forward.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private Fault? Take(HttpRequest request)
    {
        lock (_lock)
        {
            if (_armed is { } fault && string.Equals(fault.Method, request.Method, StringComparison.OrdinalIgnoreCase)
                && Regex.IsMatch(request.Path.Value ?? "", fault.Path, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
            {
                _armed = null;
                return fault;
            }

            return null;
        }
    }

    private void Fire()
    {
        lock (_lock)
        {
            _fired.TrySetResult();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var fault = Take(context.Request);
        if (fault?.Action is FaultAction.DropRequest or FaultAction.KillBefore)
        {
            // Fired first: whoever waits for the killed process must find the fault fired.
            Fire();
            fault.Kill?.Invoke();
            context.Abort();
            return;
        }

        using var forward = new HttpRequestMessage(new HttpMethod(context.Request.Method), new Uri(Target, context.Request.Path + context.Request.QueryString));
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        if (body.Length > 0 || context.Request.ContentType is not null)
        {
            forward.Content = new ByteArrayContent(body.ToArray());
            if (context.Request.ContentType is { } contentType)
            {
                forward.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
        }

        foreach (var (name, values) in context.Request.Headers)
        {
            if (!s_hopHeaders.Contains(name) && !name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
            {
                forward.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        HttpResponseMessage answer;
        try
        {
            answer = await _forward.SendAsync(forward, context.RequestAborted);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            // The receiver is down: the sender sees what it would see without a relay, a cut connection.
            context.Abort();
            return;
        }

        using (answer)
        {
            var bytes = await answer.Content.ReadAsByteArrayAsync();
            if (fault is { Action: FaultAction.DropAnswer or FaultAction.KillAfter })
            {
                // DropAnswer or KillAfter: the receiver did its work; the answer never arrives.
                Fire();
                fault.Kill?.Invoke();
                context.Abort();
                return;
            }

            context.Response.StatusCode = (int)answer.StatusCode;
            foreach (var header in answer.Content.Headers.Concat(answer.Headers))
            {
                if (!s_hopHeaders.Contains(header.Key))
                {
                    context.Response.Headers[header.Key] = header.Value.ToArray();
                }
            }

            await context.Response.Body.WriteAsync(bytes);
            lock (_lock)
            {
                _exchanges.Add(new RelayedExchange(context.Request.Method, context.Request.Path.Value ?? "", context.Request.ContentType, body.ToArray(), (int)answer.StatusCode, bytes));
            }

            if (fault is { Action: FaultAction.KillAfterDelivery })
            {
                await context.Response.CompleteAsync();
                Fire();
                fault.Kill?.Invoke();
            }
        }
    }
}
