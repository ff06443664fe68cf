using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
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

    /// <summary>
    /// The signature's s is in the upper half of the group order: the mirror image (n − s) of a
    /// signature, which ECDSA would accept as well. OpenPurse signers always make the lower one.
    /// </summary>
    /// <remarks>
    /// A reason of its own rather than <see cref="BadSignature"/>: such a signature is made by the
    /// key holder or copied from one it made, so the key is right and some signer (or someone on
    /// the way) does not normalise; saying so spares the search for a wrong key.
    /// </remarks>
    HighS,
}

/// <summary>
/// Compact JWS (RFC 7515 §7.1) with ES256 only. Every OpenPurse message on the open network
/// travels as one: the payload is the exact JSON bytes that were signed.
/// </summary>
/// <remarks>
/// Verification allows exactly one algorithm, so <c>alg: none</c> and algorithm substitution
/// are refused before any key is touched; the key is found by <c>kid</c> in the signer's JWKS;
/// the <c>typ</c> names the message kind, so a signature made for one kind of message can never
/// pass as another. A signature has one form only: every signature made has s ≤ n/2 (low S) and
/// verification refuses the other, since ECDSA accepts both (r, s) and (r, n − s) and anyone can
/// turn one into the other without the key; with the canonical base64url rule, a message signed
/// once has exactly one spelling.
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
        // Software keys and PKCS#11 tokens both pick s at random between the two halves.
        LowS.Normalize(signature);
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

    /// <summary>
    /// Reads a JWS's payload without verifying anything, split and decoded as strictly as
    /// verification does: only to learn whose key set verifies it (a bill's store), never to trust it.
    /// </summary>
    /// <returns>The payload's bytes, or null when <paramref name="compact"/> is not a compact JWS.</returns>
    public static byte[]? PeekPayload(string? compact) =>
        TrySplit(compact, out _, out var payloadPart, out _) && TryDecode(payloadPart, out var payload) ? payload : null;

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

        // Before the curve arithmetic: the high-S twin of a valid signature would pass it.
        if (LowS.IsHigh(signature))
        {
            error = JwsError.HighS;
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

    // Strict base64url: the URL alphabet without padding (RFC 7515 §2), nothing else. JWE parts too.
    internal static bool TryDecode(string text, out byte[] bytes)
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
/// The low-S rule for P-256 signatures (as in BIP 62 and libsecp256k1): of the two signatures
/// (r, s) and (r, n − s) that verify for the same message and key, only the one with s ≤ n/2 is
/// made or accepted. Without it, anyone on the way can turn a signed message into a second valid
/// one with other bytes, and whatever names a message by its bytes (a digest, a replay check)
/// would see two messages where the signer made one.
/// </summary>
internal static class LowS
{
    private const int ScalarLength = 32;

    /// <summary>The order n of the P-256 base point (SEC 2 §2.4.2, FIPS 186-4 D.1.2.3).</summary>
    private static readonly BigInteger s_order = BigInteger.Parse(
        "0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);

    private static readonly BigInteger s_halfOrder = s_order >> 1;

    /// <summary>Whether the R ‖ S signature's s is above n/2 (and below n: no scalar at all fails the ECDSA check anyway).</summary>
    public static bool IsHigh(ReadOnlySpan<byte> signature) => S(signature) is var s && s > s_halfOrder && s < s_order;

    /// <summary>Replaces a high s by n − s in place; a low one stays as it is.</summary>
    public static void Normalize(Span<byte> signature)
    {
        var s = S(signature);
        if (s <= s_halfOrder)
        {
            return;
        }

        if (s >= s_order)
        {
            throw new CryptographicException("The signer's s is not a P-256 scalar.");
        }

        var target = signature[ScalarLength..];
        target.Clear();
        var mirrored = s_order - s;
        // n − s < n/2 fits in 32 bytes; written right-aligned, big-endian, as RFC 7518 §3.4 wants.
        var written = mirrored.GetByteCount(isUnsigned: true);
        mirrored.TryWriteBytes(target[(ScalarLength - written)..], out _, isUnsigned: true, isBigEndian: true);
    }

    private static BigInteger S(ReadOnlySpan<byte> signature) =>
        new(signature.Slice(ScalarLength, ScalarLength), isUnsigned: true, isBigEndian: true);
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
