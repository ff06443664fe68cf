using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace OpenPurse.Operator.Api;

/// <summary>
/// The node's two listeners: the public one (<see cref="OperatorOptions.Urls"/>) for wallets, stores
/// and the balancer, and the admin one (<see cref="OperatorOptions.AdminUrls"/>, loopback by default)
/// for the operator's administrators and auditors. An endpoint answers on one of them only.
/// </summary>
/// <remarks>
/// One application on two Kestrel endpoints rather than a second application: the admin endpoints
/// work on the very same singletons (the store registry's cache, the registry's commit group on
/// SQLite, the key vault) and the node keeps one lifetime. Which listener a request came in on is
/// told by a connection middleware that Kestrel runs for every connection it accepts on the admin
/// endpoint; nothing the client sends (the Host header, the path) can make a connection one.
/// </remarks>
internal sealed class Listeners
{
    private readonly List<(string Scheme, ListenOptions Listen)> _public = [];
    private readonly List<(string Scheme, ListenOptions Listen)> _admin = [];

    /// <summary>Where the public API answers: bound addresses once the node has started.</summary>
    public IReadOnlyList<Uri> PublicUrls => [.. _public.Select(l => UrlOf(l.Scheme, l.Listen))];

    /// <summary>Where the admin API answers: bound addresses once the node has started; none when AdminUrls is empty.</summary>
    public IReadOnlyList<Uri> AdminUrls => [.. _admin.Select(l => UrlOf(l.Scheme, l.Listen))];

    /// <summary>Binds the public and the admin URLs, tagging every connection of the admin ones.</summary>
    /// <exception cref="InvalidOperationException">A URL that is not http(s)://address:port, or a host name other than localhost.</exception>
    public static Listeners Configure(IWebHostBuilder web, OperatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(web);
        ArgumentNullException.ThrowIfNull(options);
        var listeners = new Listeners();
        var publicUrls = Parse(options.Urls, nameof(options.Urls));
        var adminUrls = Parse(options.AdminUrls, nameof(options.AdminUrls));
        if (publicUrls.Count == 0)
        {
            throw new InvalidOperationException("Urls names no address; the node serves its public API on at least one.");
        }

        web.ConfigureKestrel(kestrel =>
        {
            foreach (var url in publicUrls)
            {
                Listen(kestrel, url, listen => listeners._public.Add((url.Scheme, listen)));
            }

            foreach (var url in adminUrls)
            {
                Listen(kestrel, url, listen =>
                {
                    listen.Use(next => connection =>
                    {
                        connection.Features.Set(AdminConnection.Instance);
                        return next(connection);
                    });
                    listeners._admin.Add((url.Scheme, listen));
                });
            }
        });
        return listeners;
    }

    /// <summary>Whether the request came in on an admin listener's connection.</summary>
    public static bool IsAdmin(HttpContext context) => context.Features.Get<AdminConnection>() is not null;

    private static List<BindingAddress> Parse(string urls, string setting)
    {
        var parsed = new List<BindingAddress>();
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException e)
            {
                throw new InvalidOperationException($"{setting}: '{url}' is not a URL such as http://127.0.0.1:5080: {e.Message}", e);
            }

            if (address.IsNamedPipe || address.IsUnixPipe || address.Port < 0 || address.PathBase.Length > 0
                || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
                || (!IPAddress.TryParse(address.Host.Trim('[', ']'), out _) && address.Host != "localhost"))
            {
                throw new InvalidOperationException($"{setting}: '{url}' is not http(s)://address:port with an IP address or localhost.");
            }

            parsed.Add(address);
        }

        return parsed;
    }

    private static void Listen(KestrelServerOptions kestrel, BindingAddress url, Action<ListenOptions> configure)
    {
        void Configure(ListenOptions listen)
        {
            configure(listen);
            if (url.Scheme == Uri.UriSchemeHttps)
            {
                // The certificate of ConfigureHttpsDefaults (ServerTls): the same for both listeners.
                listen.UseHttps();
            }
        }

        if (url.Host == "localhost")
        {
            kestrel.ListenLocalhost(url.Port, Configure);
        }
        else
        {
            kestrel.Listen(IPAddress.Parse(url.Host.Trim('[', ']')), url.Port, Configure);
        }
    }

    private static Uri UrlOf(string scheme, ListenOptions listen) =>
        new UriBuilder(scheme, listen.IPEndPoint!.Address.ToString(), listen.IPEndPoint.Port).Uri;

    /// <summary>The mark a connection of the admin listener carries.</summary>
    private sealed class AdminConnection
    {
        public static readonly AdminConnection Instance = new();
    }
}

/// <summary>Keeps each endpoint to its listener.</summary>
internal static class ListenerGate
{
    /// <summary>
    /// An endpoint answers only on its own listener: admin endpoints (<see cref="AdminSurface"/>) on
    /// the admin one, every other endpoint on the public one. On the wrong listener the request is
    /// answered as if no such endpoint existed (404).
    /// </summary>
    /// <remarks>
    /// A request no route matched ends here as 404 too, before authorization, whose fallback policy
    /// would otherwise answer an unknown path 401. Routing's own answers (405 for a known path with
    /// another method) are endpoints without a route, which change nothing, and run as they are.
    /// </remarks>
    public static IApplicationBuilder UseListenerGate(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        switch (context.GetEndpoint())
        {
            case RouteEndpoint endpoint when endpoint.Metadata.GetMetadata<AdminSurface>() is not null == Listeners.IsAdmin(context):
                return next(context);
            case { RequestDelegate: { } answer } and not RouteEndpoint:
                return answer(context);
            default:
                context.SetEndpoint(null);
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
        }
    });
}

/// <summary>Endpoint metadata: the endpoint belongs to the admin API and answers on the admin listener only.</summary>
internal sealed class AdminSurface
{
    public static readonly AdminSurface Instance = new();
}
