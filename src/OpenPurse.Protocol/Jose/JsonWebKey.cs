using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OpenPurse.Protocol.Jose;

/// <summary>
/// A public JSON Web Key (RFC 7517). OpenPurse signs with P-256 (kty EC); the RSA and OKP
/// members exist so that thumbprints of any published key can be computed (RFC 7638).
/// </summary>
public sealed record JsonWebKey
{
    /// <summary>Key type: <c>EC</c>, <c>RSA</c> or <c>OKP</c>.</summary>
    [JsonPropertyName("kty")]
    public required string Kty { get; init; }

    /// <summary>Key id, by which a JWS header names this key.</summary>
    [JsonPropertyName("kid")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Kid { get; init; }

    /// <summary>Intended use: <c>sig</c>.</summary>
    [JsonPropertyName("use")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Use { get; init; }

    /// <summary>The one algorithm this key may be used with, e.g. <c>ES256</c>.</summary>
    [JsonPropertyName("alg")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Alg { get; init; }

    /// <summary>Curve of an EC or OKP key, e.g. <c>P-256</c>.</summary>
    [JsonPropertyName("crv")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Crv { get; init; }

    /// <summary>EC x coordinate (base64url, full length) or OKP public key.</summary>
    [JsonPropertyName("x")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? X { get; init; }

    /// <summary>EC y coordinate (base64url, full length).</summary>
    [JsonPropertyName("y")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Y { get; init; }

    /// <summary>RSA modulus (base64url).</summary>
    [JsonPropertyName("n")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? N { get; init; }

    /// <summary>RSA public exponent (base64url).</summary>
    [JsonPropertyName("e")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? E { get; init; }

    /// <summary>The public JWK of a P-256 key, with its RFC 7638 thumbprint as kid unless one is given.</summary>
    /// <exception cref="ArgumentException">The key is not on P-256.</exception>
    public static JsonWebKey FromECDsa(ECDsa key, string? kid = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var parameters = key.ExportParameters(includePrivateParameters: false);
        if (parameters.Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
        {
            throw new ArgumentException("OpenPurse signs with P-256 keys (ES256).", nameof(key));
        }

        var jwk = new JsonWebKey
        {
            Kty = "EC",
            Crv = "P-256",
            X = Base64Url.EncodeToString(parameters.Q.X),
            Y = Base64Url.EncodeToString(parameters.Q.Y),
            Use = "sig",
            Alg = Jws.Es256,
        };
        return jwk with { Kid = kid ?? jwk.Thumbprint() };
    }

    /// <summary>A verifier for this key, or null when it is not a well-formed P-256 public key.</summary>
    public ECDsa? ToECDsa()
    {
        if (Kty != "EC" || Crv != "P-256" || X is null || Y is null)
        {
            return null;
        }

        byte[] x, y;
        try
        {
            x = Base64Url.DecodeFromChars(X);
            y = Base64Url.DecodeFromChars(Y);
        }
        catch (FormatException)
        {
            return null;
        }

        // RFC 7518 §6.2.1.2: coordinates are full length, never trimmed.
        if (x.Length != 32 || y.Length != 32)
        {
            return null;
        }

        try
        {
            return ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = x, Y = y } });
        }
        catch (CryptographicException)
        {
            // Not a point on the curve.
            return null;
        }
    }

    /// <summary>
    /// The RFC 7638 thumbprint: base64url(SHA-256(UTF-8 of the required members in lexicographic
    /// order, no whitespace)).
    /// </summary>
    /// <exception cref="InvalidOperationException">A required member for the key type is missing.</exception>
    public string Thumbprint()
    {
        // The required members per RFC 7638 §3.2, already in lexicographic order.
        (string Name, string? Value)[] members = Kty switch
        {
            "EC" => [("crv", Crv), ("kty", Kty), ("x", X), ("y", Y)],
            "RSA" => [("e", E), ("kty", Kty), ("n", N)],
            "OKP" => [("crv", Crv), ("kty", Kty), ("x", X)],
            _ => throw new InvalidOperationException($"No thumbprint is defined for key type '{Kty}'."),
        };

        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in members)
            {
                writer.WriteString(name, value ?? throw new InvalidOperationException($"The key lacks member '{name}'."));
            }

            writer.WriteEndObject();
        }

        return Base64Url.EncodeToString(SHA256.HashData(buffer.ToArray()));
    }

    /// <inheritdoc/>
    public override string ToString() => Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(this));
}

/// <summary>A JWK Set (RFC 7517 §5): the public keys a party publishes, found by key id.</summary>
public sealed class JsonWebKeySet
{
    /// <summary>The most keys a published set may hold: enough for rotation, bounded for lookup.</summary>
    public const int KeysMax = 64;

    /// <summary>Creates a set.</summary>
    /// <exception cref="ArgumentException">More than <see cref="KeysMax"/> keys, a key without kid, or two keys with one kid.</exception>
    public JsonWebKeySet(IEnumerable<JsonWebKey> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        Keys = [.. keys];
        if (Keys.Count > KeysMax)
        {
            throw new ArgumentException($"A key set holds at most {KeysMax} keys.", nameof(keys));
        }

        if (Keys.Any(k => k is null || string.IsNullOrEmpty(k.Kid)) || Keys.DistinctBy(k => k.Kid, StringComparer.Ordinal).Count() != Keys.Count)
        {
            throw new ArgumentException("Every key in a set needs its own kid.", nameof(keys));
        }
    }

    /// <summary>The keys.</summary>
    [JsonPropertyName("keys")]
    public IReadOnlyList<JsonWebKey> Keys { get; }

    /// <summary>Finds a key by id (ordinal comparison).</summary>
    public JsonWebKey? Find(string? kid) =>
        kid is null ? null : Keys.FirstOrDefault(k => string.Equals(k.Kid, kid, StringComparison.Ordinal));

    /// <summary>The set as JSON: <c>{"keys":[…]}</c>.</summary>
    public string ToJson() => JsonSerializer.Serialize(new { keys = Keys });

    /// <summary>Parses a published set.</summary>
    /// <exception cref="FormatException">Not a JWK Set.</exception>
    public static JsonWebKeySet Parse(string json)
    {
        try
        {
            var wire = JsonSerializer.Deserialize<Wire>(json) ?? throw new FormatException("Empty key set.");
            return new JsonWebKeySet(wire.Keys ?? throw new FormatException("A key set has a 'keys' array."));
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new FormatException("Not a JWK Set: " + e.Message, e);
        }
    }

    private sealed record Wire([property: JsonPropertyName("keys")] List<JsonWebKey>? Keys);
}
