using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace OpenPurse.Hosting;

/// <summary>Where a server listens: loopback addresses only, and the one it bound once started.</summary>
internal static class ServerAddresses
{
    /// <summary>
    /// The URLs of <paramref name="urls"/> (separated by <c>;</c>), each http or https on a loopback
    /// address: a server of ours is reached through a reverse proxy with TLS, or on the same machine.
    /// </summary>
    /// <param name="urls">The configured URLs.</param>
    /// <param name="server">The server's name in the refusal, e.g. <c>store</c>.</param>
    /// <exception cref="ArgumentException">None given, or one is not a loopback http(s) URL.</exception>
    public static string[] LoopbackOnly(string? urls, string server)
    {
        var parts = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            throw new ArgumentException($"The {server} needs at least one URL to listen on.", nameof(urls));
        }

        foreach (var part in parts)
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || !(IPAddress.TryParse(uri.DnsSafeHost, out var address) ? IPAddress.IsLoopback(address) : string.Equals(uri.Host, "localhost", StringComparison.OrdinalIgnoreCase)))
            {
                throw new ArgumentException($"The {server} listens on loopback only (http://127.0.0.1:PORT); '{part}' is not such an address.", nameof(urls));
            }
        }

        return parts;
    }

    /// <summary>The address <paramref name="app"/> listens on, once started.</summary>
    /// <exception cref="InvalidOperationException">The application has not started.</exception>
    public static Uri Bound(WebApplication app, string server)
    {
        ArgumentNullException.ThrowIfNull(app);
        var addresses = ((IApplicationBuilder)app).ServerFeatures.Get<IServerAddressesFeature>()?.Addresses;
        var first = addresses?.FirstOrDefault() ?? throw new InvalidOperationException($"The {server} has not started.");
        return new Uri(first, UriKind.Absolute);
    }
}
