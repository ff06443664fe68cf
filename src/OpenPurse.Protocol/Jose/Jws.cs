using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace OpenPurse.Protocol.Jose;

/// <summary>A private key that produces ES256 signatures: in memory, or in an HSM.</summary>
public interface ISigningKey
{
    /// <summary>The key id published in the signer's JWKS and written in every JWS header.</summary>
    string KeyId { get; }

    /// <summary>The public half, as published.</summary>
    JsonWebKey PublicKey { get; }

    /// <summary>Signs with ECDSA P-256 over SHA-256; returns the 64-byte R ‖ S (RFC 7518 §3.4).</summary>
    byte[] SignEs256(ReadOnlySpan<byte> signingInput);
}

/// <summary>An ES256 signing key held in process memory.</summary>
public sealed class EcdsaSigningKey : ISigningKey, IDisposable
{
    private readonly ECDsa _key;
    private readonly Lock _lock = new();

    /// <summary>Takes ownership of a P-256 private key.</summary>
    public EcdsaSigningKey(ECDsa key, string? kid = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        PublicKey = JsonWebKey.FromECDsa(key, kid);
        KeyId = PublicKey.Kid!;
    }

    /// <summary>Makes a fresh P-256 key.</summary>
    public static EcdsaSigningKey Generate(string? kid = null) => new(ECDsa.Create(ECCurve.NamedCurves.nistP256), kid);

    /// <inheritdoc/>
    public string KeyId { get; }

    /// <inheritdoc/>
    public JsonWebKey PublicKey { get; }

    /// <inheritdoc/>
    public byte[] SignEs256(ReadOnlySpan<byte> signingInput)
    {
        // An ECDsa instance is not documented as thread-safe; one key serves many requests.
        lock (_lock)
        {
            return _key.SignData(signingInput, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _key.Dispose();
}

/// <summary>Why a JWS was refused.</summary>
public enum JwsError
{
    /// <summary>Not three base64url parts, or a header that is not a JSON object.</summary>
    Malformed,

    /// <summary>The header names an algorithm other than ES256 (including <c>none</c>), or the key is bound to another one.</summary>
    AlgorithmNotAllowed,

    /// <summary>No key with the header's kid (or no kid at all).</summary>
    UnknownKey,

    /// <summary>The header's <c>typ</c> is not the message type expected here.</summary>
    WrongType,

    /// <summary>The header asks for extensions (<c>crit</c>) this verifier does not implement.</summary>
    UnsupportedCritical,

    /// <summary>The signature does not verify: some byte was changed, or another key signed.</summary>
    BadSignature,
}

/// <summary>
/// Compact JWS (RFC 7515 §7.1) with ES256 only. Every OpenPurse message on the open network
/// travels as one: the payload is the exact JSON bytes that were signed.
/// </summary>
/// <remarks>
/// Verification allows exactly one algorithm, so <c>alg: none</c> and algorithm substitution
/// are refused before any key is touched; the key is found by <c>kid</c> in the signer's JWKS;
/// the <c>typ</c> names the message kind, so a signature made for one kind of message can never
/// pass as another.
/// </remarks>
public static class Jws
{
    /// <summary>The one algorithm OpenPurse signs and accepts.</summary>
    public const string Es256 = "ES256";

    /// <summary>The largest compact JWS accepted: messages are small; this bounds parsing work.</summary>
    public const int CompactLengthMax = 64 * 1024;

    private const int SignatureLength = 64;

    /// <summary>Signs a payload: <c>header.payload.signature</c> with alg ES256, the key's kid and <paramref name="type"/> as typ.</summary>
    public static string Sign(ISigningKey key, ReadOnlySpan<byte> payload, string type)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrEmpty(type);
        using var headerBuffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(headerBuffer))
        {
            writer.WriteStartObject();
            writer.WriteString("alg", Es256);
            writer.WriteString("kid", key.KeyId);
            writer.WriteString("typ", type);
            writer.WriteEndObject();
        }

        var signingInput = Base64Url.EncodeToString(headerBuffer.ToArray()) + "." + Base64Url.EncodeToString(payload);
        var signature = key.SignEs256(Encoding.ASCII.GetBytes(signingInput));
        Debug.Assert(signature.Length == SignatureLength, "ES256 signatures are 64 bytes.");
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    /// <summary>
    /// Verifies a compact JWS against the signer's key set and returns its payload.
    /// </summary>
    /// <param name="compact">The JWS.</param>
    /// <param name="keys">The signer's published keys; the header's kid must name one.</param>
    /// <param name="expectedType">The typ this message must carry.</param>
    /// <param name="payload">The verified payload bytes.</param>
    /// <param name="error">Why it was refused.</param>
    public static bool TryVerify(string? compact, JsonWebKeySet keys, string expectedType, out byte[] payload, out JwsError error)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return TryVerify(compact, kid => keys.Find(kid), expectedType, out payload, out error);
    }

    /// <summary>Verifies against one given key (its kid, if any, must match the header's).</summary>
    /// <param name="compact">The JWS.</param>
    /// <param name="key">The key to check with.</param>
    /// <param name="expectedType">The typ this message must carry, or null when the header need not have one (RFC examples).</param>
    /// <param name="payload">The verified payload bytes.</param>
    /// <param name="error">Why it was refused.</param>
    public static bool TryVerify(string? compact, JsonWebKey key, string? expectedType, out byte[] payload, out JwsError error)
    {
        ArgumentNullException.ThrowIfNull(key);
        return TryVerify(compact, kid => kid is null || key.Kid is null || string.Equals(kid, key.Kid, StringComparison.Ordinal) ? key : null, expectedType, out payload, out error);
    }

    /// <summary>Reads the kid from a JWS header without verifying anything (to pick the signer's key set).</summary>
    public static string? PeekKeyId(string? compact) =>
        TrySplit(compact, out var headerPart, out _, out _) && TryReadHeader(headerPart, out var header) ? header.Kid : null;

    private static bool TryVerify(string? compact, Func<string?, JsonWebKey?> findKey, string? expectedType, out byte[] payload, out JwsError error)
    {
        payload = [];
        if (!TrySplit(compact, out var headerPart, out var payloadPart, out var signaturePart)
            || !TryReadHeader(headerPart, out var header))
        {
            error = JwsError.Malformed;
            return false;
        }

        if (!string.Equals(header.Alg, Es256, StringComparison.Ordinal))
        {
            error = JwsError.AlgorithmNotAllowed;
            return false;
        }

        if (header.HasCritical)
        {
            error = JwsError.UnsupportedCritical;
            return false;
        }

        if (expectedType is not null && !string.Equals(header.Typ, expectedType, StringComparison.Ordinal))
        {
            error = JwsError.WrongType;
            return false;
        }

        var jwk = findKey(header.Kid);
        if (jwk is null)
        {
            error = JwsError.UnknownKey;
            return false;
        }

        if (jwk.Alg is not null && !string.Equals(jwk.Alg, Es256, StringComparison.Ordinal))
        {
            error = JwsError.AlgorithmNotAllowed;
            return false;
        }

        if (!TryDecode(signaturePart, out var signature) || signature.Length != SignatureLength
            || !TryDecode(payloadPart, out var payloadBytes))
        {
            error = JwsError.Malformed;
            return false;
        }

        var verifier = Verifiers.Rent(jwk, out var pool);
        if (verifier is null)
        {
            error = JwsError.AlgorithmNotAllowed;
            return false;
        }

        try
        {
            var signingInput = Encoding.ASCII.GetBytes(compact!.AsSpan(0, headerPart.Length + 1 + payloadPart.Length).ToString());
            if (!verifier.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
            {
                error = JwsError.BadSignature;
                return false;
            }
        }
        finally
        {
            pool.Add(verifier);
        }

        payload = payloadBytes;
        error = default;
        return true;
    }

    private static bool TrySplit(string? compact, out string header, out string payload, out string signature)
    {
        header = payload = signature = "";
        if (compact is null || compact.Length > CompactLengthMax)
        {
            return false;
        }

        var parts = compact.Split('.');
        if (parts.Length != 3 || parts[0].Length == 0 || parts[2].Length == 0)
        {
            return false;
        }

        (header, payload, signature) = (parts[0], parts[1], parts[2]);
        return true;
    }

    // Strict base64url: the URL alphabet without padding (RFC 7515 §2), nothing else.
    private static bool TryDecode(string text, out byte[] bytes)
    {
        bytes = [];
        if (text.AsSpan().ContainsAnyExcept(s_base64UrlAlphabet) || text.Length % 4 == 1)
        {
            return false;
        }

        try
        {
            bytes = Base64Url.DecodeFromChars(text);
            // Refuse non-canonical encodings (stray bits in the last character), so one signature has one spelling.
            return string.Equals(Base64Url.EncodeToString(bytes), text, StringComparison.Ordinal);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static readonly System.Buffers.SearchValues<char> s_base64UrlAlphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

    private static bool TryReadHeader(string headerPart, out Header header)
    {
        header = default;
        if (!TryDecode(headerPart, out var json))
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            string? alg = null, kid = null, typ = null;
            var critical = false;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var member in document.RootElement.EnumerateObject())
            {
                // RFC 7515 §4: duplicate header names must be refused (or the last one used); refusing is safer.
                if (!seen.Add(member.Name))
                {
                    return false;
                }

                switch (member.Name)
                {
                    case "alg" when member.Value.ValueKind == JsonValueKind.String:
                        alg = member.Value.GetString();
                        break;
                    case "kid" when member.Value.ValueKind == JsonValueKind.String:
                        kid = member.Value.GetString();
                        break;
                    case "typ" when member.Value.ValueKind == JsonValueKind.String:
                        typ = member.Value.GetString();
                        break;
                    case "crit":
                        critical = true;
                        break;
                    case "alg" or "kid" or "typ":
                        return false;
                }
            }

            header = new Header(alg, kid, typ, critical);
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // JsonDocument checks structure only; GetString and Name throw on strings that are
            // not valid UTF-8 or hold an escaped lone surrogate ("\uD800").
            return false;
        }
    }

    private readonly record struct Header(string? Alg, string? Kid, string? Typ, bool HasCritical);
}

/// <summary>
/// Verifiers by public key. Importing a P-256 point costs several times what checking a signature
/// with it does, and a few keys (the operator's, the stores') verify every message, so each key's
/// imported verifiers are kept: one per caller at a time, since an ECDsa instance is not documented
/// as safe for concurrent use. Keyed by the coordinates themselves, never by kid, so a key that
/// reuses a kid gets its own verifier.
/// </summary>
internal static class Verifiers
{
    /// <summary>Distinct keys kept before the cache starts again: far more than a deployment has signers.</summary>
    private const int KeysMax = 1024;

    private static readonly ConcurrentDictionary<(string X, string Y), ConcurrentBag<ECDsa>> s_pools = new();

    /// <summary>A verifier for a well-formed P-256 public key, or null; add it back to <paramref name="pool"/> when done.</summary>
    public static ECDsa? Rent(JsonWebKey jwk, out ConcurrentBag<ECDsa> pool)
    {
        pool = null!;
        if (jwk.Kty != "EC" || jwk.Crv != "P-256" || jwk.X is not { } x || jwk.Y is not { } y)
        {
            return null;
        }

        if (s_pools.TryGetValue((x, y), out var found))
        {
            pool = found;
            if (found.TryTake(out var kept))
            {
                return kept;
            }
        }

        // Only a key that imports gets a pool: malformed ones leave nothing behind.
        var imported = jwk.ToECDsa();
        if (imported is null)
        {
            return null;
        }

        if (pool is null)
        {
            if (s_pools.Count >= KeysMax)
            {
                s_pools.Clear();
            }

            pool = s_pools.GetOrAdd((x, y), _ => []);
        }

        return imported;
    }
}
