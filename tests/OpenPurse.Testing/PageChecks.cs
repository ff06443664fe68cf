using System.Diagnostics;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace OpenPurse.Testing;

/// <summary>
/// What every page a server shows people must be, checked on the page as a browser parses it:
/// the protective headers, nothing loaded from or sent to a host other than its own and the wallet
/// agent's, no inline script or style (the policy would block it, and it is where injected markup
/// runs), and the accessibility basics (a language, one h1, a focusable heading per section,
/// a label for every field). Each check returns what is wrong, one line a fault; none is right.
/// </summary>
public static class PageChecks
{
    private static readonly string[] s_urlAttributes = ["src", "href", "action", "formaction", "srcset", "poster", "data", "cite", "background", "ping"];

    /// <summary>Parses HTML as a browser does.</summary>
    public static IDocument Parse(string html) => new HtmlParser().ParseDocument(html);

    /// <summary>
    /// The answer carries the media type (with charset utf-8), no caching without asking again, no
    /// sniffing, no framing, no referrer, and the content security policy whose connect-src names
    /// the server itself and <paramref name="agentOrigin"/> only.
    /// </summary>
    public static IReadOnlyList<string> ServingFaults(HttpResponseMessage answer, string mediaType, string agentOrigin)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var faults = new List<string>();
        void Expect(string what, string? expected, string? actual)
        {
            if (!string.Equals(expected, actual, StringComparison.Ordinal))
            {
                faults.Add($"{answer.RequestMessage?.RequestUri?.AbsolutePath} {what}: '{actual}', not '{expected}'");
            }
        }

        Expect("status", "200", ((int)answer.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Expect("media type", mediaType, answer.Content.Headers.ContentType?.MediaType);
        Expect("charset", "utf-8", answer.Content.Headers.ContentType?.CharSet);
        Expect("Cache-Control", "no-cache", answer.Headers.CacheControl?.ToString());
        Expect("X-Content-Type-Options", "nosniff", Single(answer, "X-Content-Type-Options"));
        Expect("X-Frame-Options", "DENY", Single(answer, "X-Frame-Options"));
        Expect("Referrer-Policy", "no-referrer", Single(answer, "Referrer-Policy"));
        Expect("Cross-Origin-Opener-Policy", "same-origin", Single(answer, "Cross-Origin-Opener-Policy"));
        Expect("Cross-Origin-Resource-Policy", "same-origin", Single(answer, "Cross-Origin-Resource-Policy"));
        Expect("Content-Security-Policy",
            $"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' {agentOrigin}; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            Single(answer, "Content-Security-Policy"));
        return faults;
    }

    /// <summary>
    /// Every URL the page holds is its own server's (a path, or a fragment) or the agent's; no
    /// base, no refresh, no inline script, style or event handler.
    /// </summary>
    public static IReadOnlyList<string> OutsideHostFaults(IDocument page, string agentOrigin)
    {
        ArgumentNullException.ThrowIfNull(page);
        var faults = new List<string>();
        faults.AddRange(page.QuerySelectorAll("base").Select(_ => "a <base> element"));
        faults.AddRange(page.QuerySelectorAll("meta[http-equiv]").Select(m => $"<meta http-equiv=\"{m.GetAttribute("http-equiv")}\">"));
        faults.AddRange(page.QuerySelectorAll("style, [style]").Select(e => $"<{e.LocalName}>: an inline style"));
        faults.AddRange(page.QuerySelectorAll("iframe, frame, object, embed").Select(e => $"<{e.LocalName}>"));
        faults.AddRange(page.QuerySelectorAll("script").Where(script => !script.HasAttribute("src") || script.TextContent.Trim().Length > 0).Select(_ => "an inline script"));
        foreach (var element in page.All)
        {
            foreach (var attribute in element.Attributes)
            {
                if (attribute.Name.StartsWith("on", StringComparison.OrdinalIgnoreCase))
                {
                    faults.Add($"<{element.LocalName} {attribute.Name}>: an inline event handler");
                }

                if (s_urlAttributes.Contains(attribute.Name, StringComparer.OrdinalIgnoreCase))
                {
                    var value = attribute.Value.Trim();
                    // "data:," is the empty inline icon, which spares the browser asking for /favicon.ico.
                    var own = value.StartsWith('#') || value == "data:," || (value.StartsWith('/') && !value.StartsWith("//", StringComparison.Ordinal) && !value.Contains('\\', StringComparison.Ordinal));
                    if (!own && !value.StartsWith(agentOrigin + "/", StringComparison.Ordinal))
                    {
                        faults.Add($"<{element.LocalName} {attribute.Name}=\"{value}\">: not this server's nor the agent's");
                    }
                }
            }
        }

        return faults;
    }

    /// <summary>The script or stylesheet names no host at all (it reaches the agent through the meta tag only), and builds no code or markup from text.</summary>
    public static IReadOnlyList<string> NamedHostFaults(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] forbidden = ["http://", "https://", "//cdn", "@import", "url(", "eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"];
        // Case matters: a script's new URL(path, agent) is not a stylesheet's url(…).
        return [.. forbidden.Where(word => text.Contains(word, StringComparison.Ordinal)).Select(word => $"holds '{word}'")];
    }

    /// <summary>
    /// A language; one h1; every section a heading the script can move the focus to, and only the
    /// first section shown; every field a label; every control a real button or link.
    /// </summary>
    public static IReadOnlyList<string> AccessibilityFaults(IDocument page, IEnumerable<string> sectionIds)
    {
        ArgumentNullException.ThrowIfNull(page);
        ArgumentNullException.ThrowIfNull(sectionIds);
        var faults = new List<string>();
        if (string.IsNullOrWhiteSpace(page.DocumentElement.GetAttribute("lang")))
        {
            faults.Add("<html> has no lang");
        }

        if (page.QuerySelectorAll("h1").Length != 1)
        {
            faults.Add($"{page.QuerySelectorAll("h1").Length} h1 elements, not one");
        }

        var ids = sectionIds.ToList();
        foreach (var id in ids)
        {
            var section = page.GetElementById(id);
            if (section is not { LocalName: "section" })
            {
                faults.Add($"#{id} is not a section");
                continue;
            }

            if (section.QuerySelector("h2") is not { } heading || heading.GetAttribute("tabindex") != "-1")
            {
                faults.Add($"#{id} has no heading the focus can move to (h2 tabindex=-1)");
            }

            if (section.HasAttribute("hidden") != (id != ids[0]))
            {
                faults.Add($"#{id} is {(section.HasAttribute("hidden") ? "hidden" : "shown")} when the page opens");
            }
        }

        faults.AddRange(page.QuerySelectorAll("section").Select(s => s.Id ?? "").Except(ids, StringComparer.Ordinal).Select(id => $"the section #{id} is not one of the screens"));
        foreach (var field in page.QuerySelectorAll("input:not([type=hidden]), select, textarea"))
        {
            var labelled = (field.Id is { Length: > 0 } id && page.QuerySelector($"label[for=\"{id}\"]") is not null)
                || field.HasAttribute("aria-label") || field.HasAttribute("aria-labelledby");
            if (!labelled)
            {
                faults.Add($"<{field.LocalName} id={field.Id}> has no label");
            }
        }

        faults.AddRange(page.QuerySelectorAll("[role=button], div[tabindex], span[tabindex]").Select(e => $"<{e.LocalName}> plays a button"));
        faults.AddRange(page.QuerySelectorAll("a[target=_blank]").Where(link => !(link.GetAttribute("rel") ?? "").Contains("noopener", StringComparison.Ordinal)).Select(link => $"#{link.Id} opens a window without rel=noopener"));
        return faults;
    }

    /// <summary>
    /// Checks the syntax of an ES module with <c>node --check</c> when node is on the PATH; without
    /// node there is nothing to check it with, and the other checks still run.
    /// </summary>
    /// <returns>node's complaint, or null when the syntax is right or node is not there.</returns>
    public static string? ModuleSyntaxFault(string script)
    {
        var node = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, "node")).FirstOrDefault(File.Exists);
        if (node is null)
        {
            return null;
        }

        var file = Path.Combine(Path.GetTempPath(), $"openpurse-page-{Guid.NewGuid():N}.mjs");
        File.WriteAllText(file, script);
        try
        {
            using var process = Process.Start(new ProcessStartInfo(node, ["--check", file]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            var errors = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? null : "node --check: " + errors.Result;
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string? Single(HttpResponseMessage answer, string header) =>
        answer.Headers.TryGetValues(header, out var values) && values.ToList() is [var one] ? one : null;
}
