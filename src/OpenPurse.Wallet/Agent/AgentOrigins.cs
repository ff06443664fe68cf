namespace OpenPurse.Wallet.Agent;

/// <summary>
/// The origins allowed to use the agent's API, in their canonical form (lower-case scheme and host,
/// the port only when it is not the scheme's default), as a browser sends them in <c>Origin</c>.
/// Read on every request and added to while the agent runs; the set is replaced, never changed in place.
/// </summary>
internal sealed class AgentOrigins
{
    private IReadOnlySet<string> _allowed = new HashSet<string>(StringComparer.Ordinal);

    public IReadOnlyCollection<string> All => (IReadOnlyCollection<string>)_allowed;

    /// <summary>Adds an origin.</summary>
    /// <exception cref="ArgumentException">Not an http(s) origin: a scheme and a host, maybe a port, nothing else.</exception>
    public void Add(string origin)
    {
        var canonical = Canonical(origin) ?? throw new ArgumentException($"'{origin}' is not an origin (scheme://host[:port], http or https, no path).", nameof(origin));
        while (true)
        {
            var before = _allowed;
            var after = new HashSet<string>(before, StringComparer.Ordinal) { canonical };
            if (Interlocked.CompareExchange(ref _allowed, after, before) == before)
            {
                return;
            }
        }
    }

    /// <summary>The allowed origin a request's <c>Origin</c> header names, in canonical form, or null.</summary>
    public string? Match(string? origin) => Canonical(origin) is { } canonical && _allowed.Contains(canonical) ? canonical : null;

    /// <summary>
    /// An origin's canonical form, or null when the text is not exactly an http(s) origin (no path,
    /// query, fragment, user info; "null" and anything else a browser sends for opaque origins is not one).
    /// </summary>
    public static string? Canonical(string? origin)
    {
        if (string.IsNullOrEmpty(origin) || origin.Length > 256
            || !Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            || uri.UserInfo.Length > 0 || uri.Query.Length > 0 || uri.Fragment.Length > 0
            || uri.AbsolutePath != "/" || origin.EndsWith('/') || string.IsNullOrEmpty(uri.Host))
        {
            return null;
        }

        return uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant();
    }
}
