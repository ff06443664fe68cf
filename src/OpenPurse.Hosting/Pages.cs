using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace OpenPurse.Hosting;

/// <summary>
/// The pages a server shows people in their own browser (the store's checkout, the operator's
/// top-up), written once: each file is an embedded resource of the server's assembly (so a server
/// runs from any directory), served from memory on its own GET route (so that unknown paths and
/// methods are refused as every other one is), open to anyone, kept out of the OpenAPI documents
/// (they are not API), and sent with headers that keep the page to itself: a content security
/// policy that allows scripts, styles and connections only from the page's own origin and the
/// wallet agent's, no framing, no sniffing, no referrer.
/// </summary>
/// <remarks>
/// The pages never reach the card: they talk to the wallet agent, a local program on its own
/// origin, whose address the server writes into every page's
/// <c>&lt;meta name="openpurse-agent"&gt;</c> (the <c>{AgentUrl}</c> placeholder) when it starts.
/// </remarks>
internal static class Pages
{
    /// <summary>The shared stylesheet's path on every server that serves pages.</summary>
    public const string StylesheetPath = "/openpurse.css";

    /// <summary>The shared script module's path (the agent's address, refusals, calls to the agent, screens).</summary>
    public const string ScriptPath = "/openpurse.js";

    /// <summary>Where the wallet agent listens unless configured otherwise.</summary>
    public static readonly Uri DefaultAgentUrl = new("http://127.0.0.1:5099");

    /// <summary>The placeholder in a page's HTML that the agent's origin replaces.</summary>
    public const string AgentPlaceholder = "{AgentUrl}";

    /// <summary>The stylesheet's resource in this assembly.</summary>
    private const string StylesheetResource = "openpurse.css";

    /// <summary>The shared script module's resource in this assembly.</summary>
    private const string ScriptResource = "openpurse.js";

    /// <summary>
    /// The origin (<c>scheme://host[:port]</c>) of a configured agent URL, or null when it is not one
    /// a page may be told to talk to: absolute, http on a loopback address (the agent on the
    /// person's own machine) or https, with no user, path, query or fragment. A value that passes
    /// is made only of a scheme, a host name or address and a port, nothing that could leave the
    /// meta tag or the content security policy it is written into.
    /// </summary>
    public static string? AgentOrigin(Uri? url)
    {
        if (url is not { IsAbsoluteUri: true } || url.UserInfo.Length > 0 || url.AbsolutePath != "/" || url.Query.Length > 0 || url.Fragment.Length > 0
            || url.OriginalString.Contains('?', StringComparison.Ordinal) || url.OriginalString.Contains('#', StringComparison.Ordinal))
        {
            return null;
        }

        var loopback = IPAddress.TryParse(url.DnsSafeHost, out var address) ? IPAddress.IsLoopback(address) : string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase);
        // The host as ASCII (an international name in its punycode form): the origin goes into a
        // header, where only ASCII may stand, and is what the browser compares origins by.
        var host = url.HostNameType == UriHostNameType.IPv6 ? $"[{url.IdnHost.Trim('[', ']')}]" : url.IdnHost;
        return url.Scheme == Uri.UriSchemeHttps || (url.Scheme == Uri.UriSchemeHttp && loopback)
            ? $"{url.Scheme}://{host}{(url.IsDefaultPort ? "" : ":" + url.Port.ToString(System.Globalization.CultureInfo.InvariantCulture))}"
            : null;
    }

    /// <summary>
    /// The content security policy of every page of a server whose pages talk to the agent at
    /// <paramref name="agentOrigin"/>: nothing but the page's own scripts and styles (no inline
    /// script or style, no <c>eval</c>), connections to its own origin and the agent's only.
    /// </summary>
    public static string ContentSecurityPolicy(string agentOrigin) =>
        $"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' {agentOrigin}; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    /// <summary>
    /// Maps each of <paramref name="files"/> (a path such as <c>/</c> and the name of an embedded
    /// resource of <paramref name="assembly"/>), the shared stylesheet at <see cref="StylesheetPath"/> and the shared script module at <see cref="ScriptPath"/>.
    /// In HTML files, <see cref="AgentPlaceholder"/> and each key of <paramref name="fills"/> are
    /// replaced by the agent's origin and the key's value, HTML-encoded.
    /// </summary>
    /// <param name="app">The server's routes.</param>
    /// <param name="agentOrigin">The agent's origin, from <see cref="AgentOrigin"/>.</param>
    /// <param name="assembly">The server's assembly, which holds its pages.</param>
    /// <param name="files">The server's pages and scripts.</param>
    /// <param name="fills">Further placeholders of the HTML files and their values, as text.</param>
    /// <returns>The page endpoints, for more conventions.</returns>
    /// <exception cref="InvalidOperationException">A resource is missing, or its type is not one pages are served as.</exception>
    public static IReadOnlyList<IEndpointConventionBuilder> MapPages(this IEndpointRouteBuilder app, string agentOrigin, Assembly assembly,
        IReadOnlyList<(string Path, string Resource)> files, IReadOnlyDictionary<string, string>? fills = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentException.ThrowIfNullOrEmpty(agentOrigin);
        ArgumentNullException.ThrowIfNull(assembly);
        ArgumentNullException.ThrowIfNull(files);
        var policy = ContentSecurityPolicy(agentOrigin);
        var placeholders = new Dictionary<string, string>(fills ?? new Dictionary<string, string>(), StringComparer.Ordinal) { [AgentPlaceholder] = agentOrigin };
        var endpoints = new List<IEndpointConventionBuilder>();
        foreach (var (path, resource) in files.Append((StylesheetPath, StylesheetResource)).Append((ScriptPath, ScriptResource)))
        {
            var source = path is StylesheetPath or ScriptPath ? typeof(Pages).Assembly : assembly;
            var type = MediaTypeOf(resource);
            var text = Read(source, resource);
            if (type.StartsWith("text/html", StringComparison.Ordinal))
            {
                foreach (var (placeholder, value) in placeholders)
                {
                    text = text.Replace(placeholder, HtmlEncoder.Default.Encode(value), StringComparison.Ordinal);
                }
            }

            var body = Encoding.UTF8.GetBytes(text);
            endpoints.Add(app.MapGet(path, context => WriteAsync(context, body, type, policy))
                .AllowAnonymous()
                .ExcludeFromDescription()
                .WithDisplayName("Page " + path)
                .WithMetadata(PageSurface.Instance));
        }

        return endpoints;
    }

    private static Task WriteAsync(HttpContext context, byte[] body, string type, string policy)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = type;
        response.ContentLength = body.Length;
        var headers = response.Headers;
        // Asked again each time (it is small): a server started with another agent address, or a
        // newer version, is never hidden behind a cached page.
        headers.CacheControl = "no-cache";
        headers.ContentSecurityPolicy = policy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        // Another site cannot pull the page or its script into its own (as a no-cors script or image).
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static string MediaTypeOf(string resource) => Path.GetExtension(resource) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        _ => throw new InvalidOperationException($"The page resource {resource} is not HTML, JavaScript or CSS."),
    };

    /// <summary>An embedded text resource (a page, script or stylesheet) of <paramref name="assembly"/>, as UTF-8 text.</summary>
    /// <exception cref="InvalidOperationException">The resource is missing.</exception>
    public static string Read(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The page resource {resource} is not in {assembly.GetName().Name}.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}

/// <summary>Endpoint metadata: the endpoint serves a page or its script or stylesheet, not API.</summary>
internal sealed class PageSurface
{
    public static readonly PageSurface Instance = new();
}
