using System.Text;
using System.Text.Json.Nodes;

namespace OpenPurse.Hostile.Tests;

/// <summary>
/// The hostile variations every endpoint gets: of a JSON body (not JSON, truncated, the wrong
/// shape, duplicated, reordered and unknown members, huge values, wrong and missing content types,
/// bodies beyond any limit) and of a route value (not an id, CR/LF, NUL, very long).
/// </summary>
internal static class HostileInputs
{
    /// <summary>Larger than any body an endpoint reads (the store's limit is 128 KiB).</summary>
    public const int OversizedBodyLength = 2 * 1024 * 1024;

    /// <summary>
    /// Hostile bodies made from <paramref name="valid"/>, a body of the endpoint's contract (whose
    /// own answer may be a refusal for what it says, as long as it is well-formed).
    /// </summary>
    public static IEnumerable<Probe> Bodies(HttpMethod method, string path, string valid, IReadOnlyList<(string Name, string Value)>? headers = null)
    {
        Probe Text(string name, string text, string? contentType = "application/json") =>
            new(name, method, path, Encoding.UTF8.GetBytes(text), contentType, headers);
        Probe Bytes(string name, byte[] bytes, string? contentType = "application/json") =>
            new(name, method, path, bytes, contentType, headers);

        yield return Text("the valid body", valid);
        yield return Bytes("empty body", []);
        yield return new Probe("no body, no content type", method, path, null, null, headers);
        foreach (var text in new[] { "hello", "<bill/>", "{'a':1}", "{\"a\":1,}", "{\"a\" 1}", "\u0000", "{}}", "[", "\"", "\uFEFF" + valid, "/* comment */" + valid, valid + "garbage" })
        {
            yield return Text($"not JSON ({Describe(text)})", text);
        }

        yield return Bytes("invalid UTF-8", [0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]);
        yield return Bytes("binary", [0xFF, 0xFE, 0x00, 0x01, 0x80, 0x7B]);
        foreach (var length in new[] { 1, valid.Length / 3, valid.Length / 2, valid.Length - 1 })
        {
            yield return Text($"truncated to {length} characters", valid[..length]);
        }

        foreach (var shape in new[] { "[]", "\"text\"", "42", "null", "true", "{}", "[" + valid + "]", "{\"body\":" + valid + "}" })
        {
            yield return Text($"wrong shape {Describe(shape)}", shape);
        }

        var members = ((JsonObject)JsonNode.Parse(valid)!).Select(m => m.Key).ToArray();
        foreach (var member in members)
        {
            foreach (var value in new[] { "1", "-1", "1.5", "1e400", "123456789012345678901234567890", "true", "null", "[]", "{}", "\"\"", "\"\\u0000\"", "\"\\uD800\"", "\"\\r\\n\"" })
            {
                yield return Text($"member '{member}' as {value}", Replace(valid, member, value));
            }

            yield return Text($"member '{member}' missing", Remove(valid, member));
            yield return Text($"member '{member}' a huge string", Replace(valid, member, "\"" + new string('A', 256 * 1024) + "\""));
            yield return Text($"member '{member}' a huge array", Replace(valid, member, "[" + string.Join(',', Enumerable.Repeat("0", 100_000)) + "]"));
            yield return Text($"member '{member}' deeply nested", Replace(valid, member, new string('[', 10_000) + new string(']', 10_000)));
            yield return Text($"member '{member}' duplicated", Duplicate(valid, member));
            yield return Text($"member '{member}' in another case", Rename(valid, member, char.ToUpperInvariant(member[0]) + member[1..]));
        }

        yield return Text("members reordered", Reordered(valid));
        yield return Text("an unknown member", Add(valid, "unexpected", "1"));
        yield return Text("an unknown member '__proto__'", Add(valid, "__proto__", "{}"));
        yield return Text("deeply nested", new string('[', 100_000) + new string(']', 100_000));
        foreach (var contentType in new[] { "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=iso-8859-1", "application/json; charset=", "application/json; charset=x-unknown", "application/", "*/*", "application/json, text/plain", "\u00e9" })
        {
            yield return Text($"content type '{contentType}'", valid, contentType);
        }

        yield return Text("no content type", valid, null);
        yield return Bytes("UTF-16 body declared as UTF-16", Encoding.Unicode.GetBytes(valid), "application/json; charset=utf-16");
        yield return Text("oversized: the valid body padded with spaces", valid + new string(' ', OversizedBodyLength));
        yield return Text("oversized: one huge string", "{\"x\":\"" + new string('x', OversizedBodyLength) + "\"}");
    }

    /// <summary>Hostile values for one route parameter, percent-encoded as a URL carries them.</summary>
    /// <remarks>A NUL is refused by Kestrel alone, before any middleware (docs/errors.md): its status is given.</remarks>
    public static IEnumerable<(string Name, string Segment, int? KestrelAlone)> RouteValues()
    {
        yield return ("not an id", "not-an-id", null);
        yield return ("a GUID in braces", "%7B00000000-0000-0000-0000-000000000000%7D", null);
        yield return ("CR/LF", "a%0D%0ASet-Cookie:%20x=1", null);
        yield return ("NUL", "a%00b", 400);
        yield return ("percent-encoded slash", "a%2F..%2F..%2Fetc", null);
        yield return ("dot segment", "..", null);
        yield return ("invalid percent-encoding", "%ZZ%", null);
        yield return ("overlong UTF-8", "%C0%AF", null);
        yield return ("unicode", "%E2%80%AE%F0%9F%92%B3", null);
        yield return ("a long segment (2 000 characters)", new string('9', 2_000), null);
        yield return ("a very long segment (7 000 characters)", new string('7', 7_000), null);
        yield return ("SQL", "1'%20OR%20'1'='1", null);
        yield return ("a card number with spaces", "4000%200000%200000%200000", null);
    }

    private static string Describe(string text) => text.Length > 20 ? text[..20] + "…" : text.Replace("\u0000", "\\0", StringComparison.Ordinal);

    private static JsonObject Parse(string json) => (JsonObject)JsonNode.Parse(json)!;

    private static string Replace(string json, string member, string value) =>
        Build(Parse(json).Select(m => (m.Key, m.Key == member ? value : Raw(m.Value))));

    private static string Remove(string json, string member) =>
        Build(Parse(json).Where(m => m.Key != member).Select(m => (m.Key, Raw(m.Value))));

    private static string Rename(string json, string member, string name) =>
        Build(Parse(json).Select(m => (m.Key == member ? name : m.Key, Raw(m.Value))));

    private static string Duplicate(string json, string member)
    {
        var pairs = Parse(json).Select(m => (m.Key, Raw(m.Value))).ToList();
        pairs.Add((member, pairs.Single(p => p.Key == member).Item2));
        return Build(pairs);
    }

    private static string Reordered(string json) => Build(Parse(json).Select(m => (m.Key, Raw(m.Value))).Reverse());

    private static string Add(string json, string member, string value) => Build(Parse(json).Select(m => (m.Key, Raw(m.Value))).Append((member, value)));

    private static string Raw(JsonNode? node) => node?.ToJsonString() ?? "null";

    // Written by hand: JsonObject itself refuses duplicated names.
    private static string Build(IEnumerable<(string Name, string Value)> members) =>
        "{" + string.Join(',', members.Select(m => System.Text.Json.JsonSerializer.Serialize(m.Name) + ":" + m.Value)) + "}";
}
