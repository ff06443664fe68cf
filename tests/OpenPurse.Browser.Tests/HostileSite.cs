using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace OpenPurse.Browser.Tests;

/// <summary>
/// A web site of the test's own on its own 127.0.0.1 port (so its own origin): the pages a hostile
/// or careless store would serve, with whatever script the test gives them.
/// </summary>
internal sealed class HostileSite : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, string> _pages = new(StringComparer.Ordinal);

    private HostileSite(WebApplication app) => _app = app;

    /// <summary>The site's address, e.g. http://127.0.0.1:41234/.</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>The site's origin as a browser sends it (no trailing slash).</summary>
    public string Origin => Url.GetLeftPart(UriPartial.Authority);

    public static async Task<HostileSite> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var site = new HostileSite(app);
        app.MapGet("/{**path}", (string? path) =>
            site._pages.TryGetValue("/" + (path ?? ""), out var html)
                ? Results.Content(html, "text/html; charset=utf-8")
                : Results.NotFound());
        await app.StartAsync();
        site.Url = new Uri(app.Urls.First().TrimEnd('/') + "/");
        return site;
    }

    /// <summary>Serves <paramref name="html"/> at <paramref name="path"/> and returns its address.</summary>
    public Uri Serve(string path, string html)
    {
        _pages[path] = html;
        return new Uri(Url, path.TrimStart('/'));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
